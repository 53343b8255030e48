import { MetricsError } from './errors';
import { type FeatureMatrix, checkFeatureMatrix } from './feature-matrix';
import {
  type LogisticRegressionModel,
  decisionFunction,
  fitLogisticRegression,
} from './logistic-regression';
import { createRng, shuffleInPlace } from './random';
import { type Mask, checkFraction, checkPositive, toBits } from './validate';

export interface FeatureProbeInput {
  /** Internal features of training samples, [N, D]. */
  features: FeatureMatrix;
  /** Per training sample: is it of the forgotten class? */
  target: Mask;
  /** Samples to score after fitting, [M, D]: typically the forgotten class's test samples. */
  test: FeatureMatrix;
  /** Per test sample: is it of the forgotten class? Default: all are. */
  testTarget?: Mask;
  /** Seeds the held-out split. Default 0. */
  seed?: number;
  /** Share of the rarer class held out, with as many of the other, for `heldOutAccuracy`. Default 0.2; 0 skips it. */
  heldOutFraction?: number;
  /** L2 on standardised coefficients. Default 1e-3. */
  l2?: number;
  /** L-BFGS iteration budget. Default 300. */
  maxIterations?: number;
}

export interface FeatureProbeResult {
  /**
   * Percent of test samples classified correctly. With the default `testTarget` (all forgotten
   * class) this is the share of them the probe still recognises as the forgotten class.
   */
  testAccuracy: number;
  /** Percent correct on the held-out balanced split of the training features; 50 = chance. */
  heldOutAccuracy: number | undefined;
  /** Balanced accuracy (mean of the two per-class accuracies, percent) on the fitted rows. */
  trainBalancedAccuracy: number;
  counts: { fitPositive: number; fitNegative: number; heldOutPerClass: number; test: number };
  model: LogisticRegressionModel;
}

/**
 * A linear probe on a model's internal features: is the forgotten class still linearly
 * recognisable? Classes are balanced by weighting (the forgotten class is ~1/numClasses of the
 * data), so an uninformative probe says "forgotten class" about half the time: chance is 50%.
 */
export function featureProbe(input: FeatureProbeInput): FeatureProbeResult {
  const [n, d] = checkFeatureMatrix('featureProbe features', input.features);
  const [m, dt] = checkFeatureMatrix('featureProbe test', input.test);
  if (dt !== d) throw new MetricsError(`featureProbe: test has ${dt} features, training ${d}`);
  if (input.target.length !== n) {
    throw new MetricsError(`featureProbe: ${input.target.length} targets for ${n} rows`);
  }
  if (m === 0) throw new MetricsError('featureProbe test: empty set');
  const target = toBits('featureProbe target', input.target);
  const testTarget =
    input.testTarget === undefined
      ? new Uint8Array(m).fill(1)
      : toBits('testTarget', input.testTarget);
  if (testTarget.length !== m) {
    throw new MetricsError(`featureProbe: ${testTarget.length} test targets for ${m} rows`);
  }
  const heldOut = input.heldOutFraction ?? 0.2;
  checkFraction('heldOutFraction', heldOut, true);
  const l2 = input.l2 ?? 1e-3;
  checkPositive('l2', l2, true);
  const maxIterations = input.maxIterations ?? 300;
  checkPositive('maxIterations', maxIterations);

  const pos: number[] = [];
  const neg: number[] = [];
  for (let i = 0; i < n; i++) (target[i] ? pos : neg).push(i);
  if (pos.length === 0 || neg.length === 0) {
    throw new MetricsError('featureProbe: training target needs samples of both classes');
  }
  const k = heldOut === 0 ? 0 : Math.max(1, Math.round(heldOut * Math.min(pos.length, neg.length)));
  if (pos.length - k < 1 || neg.length - k < 1) {
    throw new MetricsError(
      `featureProbe: ${pos.length} positive and ${neg.length} negative samples are too few to hold out ${k} of each`,
    );
  }
  const seed = input.seed ?? 0;
  const posPerm = shuffleInPlace(Int32Array.from(pos), createRng(seed, 1));
  const negPerm = shuffleInPlace(Int32Array.from(neg), createRng(seed, 2));
  const heldRows = [...posPerm.subarray(0, k), ...negPerm.subarray(0, k)];
  const fitPos = posPerm.subarray(k);
  const fitNeg = negPerm.subarray(k);
  const fitRows = new Int32Array(fitPos.length + fitNeg.length);
  fitRows.set(fitPos);
  fitRows.set(fitNeg, fitPos.length);
  // Row order changes floating-point sums; sorting keeps the fit independent of the shuffle.
  fitRows.sort();

  const model = fitLogisticRegression(input.features, target, {
    rows: fitRows,
    balanced: true,
    l2,
    solver: 'lbfgs',
    maxIterations,
  });
  const logits = decisionFunction(model, input.features);
  const correctOn = (rows: ArrayLike<number>): number => {
    let c = 0;
    for (let r = 0; r < rows.length; r++) {
      const i = rows[r]!;
      if ((logits[i]! > 0 ? 1 : 0) === target[i]) c++;
    }
    return c;
  };
  const testLogits = decisionFunction(model, input.test);
  let testCorrect = 0;
  for (let i = 0; i < m; i++) if ((testLogits[i]! > 0 ? 1 : 0) === testTarget[i]) testCorrect++;

  return {
    testAccuracy: (100 * testCorrect) / m,
    heldOutAccuracy: k === 0 ? undefined : (100 * correctOn(heldRows)) / heldRows.length,
    trainBalancedAccuracy:
      50 * (correctOn(fitPos) / fitPos.length + correctOn(fitNeg) / fitNeg.length),
    counts: { fitPositive: fitPos.length, fitNegative: fitNeg.length, heldOutPerClass: k, test: m },
    model,
  };
}
