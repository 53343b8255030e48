import { describe, expect, it } from 'vitest';
import {
  type FeatureMatrix,
  decisionFunction,
  fitLogisticRegression,
  predictLogistic,
  predictProbability,
} from '../src/index';
import { makeRandom } from './helpers';

const column = (values: number[]): FeatureMatrix => ({
  data: Float64Array.from(values),
  shape: [values.length, 1],
});

/** y ~ Bernoulli(sigmoid(1 + 2·x1 − 0.01·x2)) with x1 ~ N(0, 1), x2 ~ N(50, 100²). */
function syntheticLogit(n: number, seed: number): { x: FeatureMatrix; y: Uint8Array } {
  const rnd = makeRandom(seed);
  const data = new Float32Array(n * 2);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const x1 = rnd.normal();
    const x2 = 50 + 100 * rnd.normal();
    data[2 * i] = x1;
    data[2 * i + 1] = x2;
    y[i] = rnd.uniform() < 1 / (1 + Math.exp(-(1 + 2 * x1 - 0.01 * x2))) ? 1 : 0;
  }
  return { x: { data, shape: [n, 2] }, y };
}

describe('fitLogisticRegression', () => {
  it('puts a separable 1-D threshold between the classes', () => {
    const x = column([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]);
    const y = [0, 0, 0, 0, 1, 1, 1, 1];
    const m = fitLogisticRegression(x, y);
    expect(m.solver).toBe('newton');
    expect(m.converged).toBe(true);
    expect(Array.from(predictLogistic(m, x))).toEqual(y);
    // The data are symmetric about 0.5, so the boundary is exactly there.
    expect(-m.bias / m.weights[0]!).toBeCloseTo(0.5, 6);
    expect(m.weights[0]).toBeGreaterThan(10);
  });

  it('recovers known coefficients on the caller feature scale, with either solver', () => {
    const { x, y } = syntheticLogit(4000, 7);
    const newton = fitLogisticRegression(x, y, { solver: 'newton' });
    const lbfgs = fitLogisticRegression(x, y, { solver: 'lbfgs', tolerance: 1e-9 });
    expect(newton.converged).toBe(true);
    expect(lbfgs.converged).toBe(true);
    expect(newton.bias).toBeGreaterThan(0.8);
    expect(newton.bias).toBeLessThan(1.2);
    expect(newton.weights[0]).toBeGreaterThan(1.8);
    expect(newton.weights[0]).toBeLessThan(2.2);
    expect(newton.weights[1]).toBeGreaterThan(-0.012);
    expect(newton.weights[1]).toBeLessThan(-0.008);
    // Same convex objective, so both solvers land on the same optimum.
    expect(lbfgs.objective).toBeCloseTo(newton.objective, 9);
    expect(lbfgs.bias).toBeCloseTo(newton.bias, 4);
    expect(lbfgs.weights[0]).toBeCloseTo(newton.weights[0]!, 4);
    expect(lbfgs.weights[1]).toBeCloseTo(newton.weights[1]!, 6);
    // Probabilities follow from the raw coefficients.
    const p = predictProbability(newton, x);
    const z = newton.bias + newton.weights[0]! * x.data[0]! + newton.weights[1]! * x.data[1]!;
    expect(p[0]).toBeCloseTo(1 / (1 + Math.exp(-z)), 9);
  });

  it('works without standardisation too', () => {
    const { x, y } = syntheticLogit(2000, 3);
    const a = fitLogisticRegression(x, y, { l2: 0 });
    const b = fitLogisticRegression(x, y, { l2: 0, standardize: false });
    expect(b.bias).toBeCloseTo(a.bias, 5);
    expect(b.weights[1]).toBeCloseTo(a.weights[1]!, 7);
  });

  it('balanced weighting makes each class carry half the weight', () => {
    const rnd = makeRandom(11);
    const n = 2000;
    const data = new Float64Array(n);
    const y = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = i % 10 === 0 ? 1 : 0;
      data[i] = rnd.normal() + (y[i] ? 1 : 0);
    }
    const x: FeatureMatrix = { data, shape: [n, 1] };
    // At the optimum the (unpenalised) intercept's gradient is zero: the weighted mean of
    // p − y vanishes. Balanced, that is mean(p | y=1) + mean(p | y=0) = 1.
    const meanP = (m: ReturnType<typeof fitLogisticRegression>, cls: number): number => {
      const p = predictProbability(m, x);
      let s = 0;
      let c = 0;
      for (let i = 0; i < n; i++) {
        if (y[i] === cls) {
          s += p[i]!;
          c++;
        }
      }
      return s / c;
    };
    const balanced = fitLogisticRegression(x, y, { balanced: true });
    expect(meanP(balanced, 1) + meanP(balanced, 0)).toBeCloseTo(1, 6);
    const plain = fitLogisticRegression(x, y);
    expect(Array.from(predictProbability(plain, x)).reduce((a, b) => a + b) / n).toBeCloseTo(
      0.1,
      6,
    );
    // Unbalanced, the rare class is mostly predicted negative; balanced, mostly positive.
    const recall = (m: ReturnType<typeof fitLogisticRegression>): number => {
      const pred = predictLogistic(m, x);
      let hit = 0;
      for (let i = 0; i < n; i++) if (y[i] && pred[i]) hit++;
      return hit / 200;
    };
    expect(recall(plain)).toBeLessThan(0.3);
    expect(recall(balanced)).toBeGreaterThan(0.6);
  });

  it('fitting on `rows` equals fitting on a copy of those rows', () => {
    const { x, y } = syntheticLogit(600, 5);
    const rows = Array.from({ length: 300 }, (_, k) => 2 * k);
    const copy: FeatureMatrix = {
      data: Float32Array.from(rows.flatMap((r) => [x.data[2 * r]!, x.data[2 * r + 1]!])),
      shape: [rows.length, 2],
    };
    const a = fitLogisticRegression(x, y, { rows });
    const b = fitLogisticRegression(
      copy,
      rows.map((r) => y[r]!),
    );
    expect(a.bias).toBeCloseTo(b.bias, 10);
    expect(a.weights[0]).toBeCloseTo(b.weights[0]!, 10);
  });

  it('is deterministic', () => {
    const { x, y } = syntheticLogit(500, 9);
    const a = fitLogisticRegression(x, y, { solver: 'lbfgs' });
    const b = fitLogisticRegression(x, y, { solver: 'lbfgs' });
    expect(Array.from(a.weights)).toEqual(Array.from(b.weights));
    expect(a.bias).toBe(b.bias);
  });

  it('rejects bad input with a clear error', () => {
    const x = column([1, 2, 3]);
    expect(() => fitLogisticRegression(x, [0, 1])).toThrow(/2 targets for 3 rows/);
    expect(() => fitLogisticRegression(x, [1, 1, 1])).toThrow(/both classes/);
    expect(() => fitLogisticRegression(x, [0, 1, 2])).toThrow(/not a boolean or 0\/1/);
    expect(() => fitLogisticRegression(column([1, Number.NaN, 3]), [0, 1, 0])).toThrow(
      /row 1, column 0 is NaN/,
    );
    expect(() =>
      fitLogisticRegression({ data: new Float32Array(5), shape: [3, 2] }, [0, 1, 0]),
    ).toThrow(/needs 6/);
    expect(() => fitLogisticRegression(x, [0, 1, 0], { rows: [0, 3] })).toThrow(/not a row/);
    expect(() => fitLogisticRegression(x, [0, 1, 0], { l2: -1 })).toThrow(/l2/);
    const m = fitLogisticRegression(x, [0, 1, 1]);
    expect(() => decisionFunction(m, { data: new Float32Array(4), shape: [2, 2] })).toThrow(
      /model has 1 features, x 2/,
    );
  });
});
