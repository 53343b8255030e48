import { describe, expect, it } from 'vitest';
import { type FeatureMatrix, featureProbe } from '../src/index';
import { makeRandom } from './helpers';

const D = 20;

/** n rows of noise; rows with target 1 are shifted by `shift` along a fixed direction. */
function features(
  n: number,
  target: (i: number) => boolean,
  shift: number,
  seed: number,
): { x: FeatureMatrix; y: Uint8Array } {
  const rnd = makeRandom(seed);
  const dir = Array.from({ length: D }, (_, j) => (j % 2 === 0 ? 1 : -1) / Math.sqrt(D));
  const data = new Float32Array(n * D);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = target(i) ? 1 : 0;
    for (let j = 0; j < D; j++) {
      // ReLU-like, non-negative features on unequal scales, as a CNN's pooled activations are.
      data[i * D + j] = (1 + j) * (rnd.normal() + (y[i] ? shift * dir[j]! : 0)) + 3 * j;
    }
  }
  return { x: { data, shape: [n, D] }, y };
}

const tenth = (i: number): boolean => i % 10 === 0;
const all = (): boolean => true;

describe('featureProbe', () => {
  it('recognises a linearly separable forgotten class (≈ 100%)', () => {
    const train = features(4000, tenth, 8, 1);
    const test = features(300, all, 8, 2);
    const r = featureProbe({ features: train.x, target: train.y, test: test.x });
    expect(r.heldOutAccuracy).toBeGreaterThan(99);
    expect(r.testAccuracy).toBeGreaterThan(99);
    expect(r.trainBalancedAccuracy).toBeGreaterThan(99);
    expect(r.counts).toEqual({
      fitPositive: 320,
      fitNegative: 3520,
      heldOutPerClass: 80,
      test: 300,
    });
  });

  it('is at chance on pure noise (≈ 50%)', () => {
    const train = features(6000, tenth, 0, 3);
    const test = features(600, all, 0, 4);
    const r = featureProbe({ features: train.x, target: train.y, test: test.x });
    expect(r.heldOutAccuracy).toBeGreaterThan(40);
    expect(r.heldOutAccuracy).toBeLessThan(60);
    expect(r.testAccuracy).toBeGreaterThan(35);
    expect(r.testAccuracy).toBeLessThan(65);
  });

  it('scores a mixed test set against testTarget', () => {
    const train = features(2000, tenth, 8, 5);
    const test = features(200, tenth, 8, 6);
    const r = featureProbe({
      features: train.x,
      target: train.y,
      test: test.x,
      testTarget: test.y,
    });
    expect(r.testAccuracy).toBeGreaterThan(98);
    const none = featureProbe({
      features: train.x,
      target: train.y,
      test: test.x,
      heldOutFraction: 0,
    });
    expect(none.heldOutAccuracy).toBeUndefined();
    expect(none.counts.fitPositive).toBe(200);
  });

  it('is deterministic for a seed, and the seed matters', () => {
    const train = features(1500, tenth, 1, 7);
    const test = features(100, all, 1, 8);
    const run = (seed: number) =>
      featureProbe({ features: train.x, target: train.y, test: test.x, seed });
    const a = run(3);
    expect(run(3)).toEqual(a);
    expect(Array.from(run(4).model.weights)).not.toEqual(Array.from(a.model.weights));
  });

  it('rejects bad input with a clear error', () => {
    const train = features(100, tenth, 1, 9);
    const test = features(10, all, 1, 10);
    const probe = (over: Partial<Parameters<typeof featureProbe>[0]>) => () =>
      featureProbe({ features: train.x, target: train.y, test: test.x, ...over });
    expect(probe({ target: train.y.subarray(1) })).toThrow(/99 targets for 100 rows/);
    expect(probe({ target: new Uint8Array(100) })).toThrow(/both classes/);
    expect(probe({ test: { data: new Float32Array(10), shape: [1, 10] } })).toThrow(
      /test has 10 features, training 20/,
    );
    expect(probe({ test: { data: new Float32Array(0), shape: [0, D] } })).toThrow(/empty/);
    expect(probe({ testTarget: [1, 0] })).toThrow(/2 test targets for 10 rows/);
    expect(probe({ heldOutFraction: 0.99 })).toThrow(/too few/);
    const nan = Float32Array.from(train.x.data);
    nan[D + 3] = Number.NaN;
    expect(probe({ features: { data: nan, shape: [100, D] } })).toThrow(/row 1, column 3 is NaN/);
  });
});
