import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { frozenBatchNorm, trainingBatchNorm } from '../src/layers/batch-norm';
import { useWasm } from './helpers';

beforeAll(useWasm);

function maxRelativeError(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  let worst = 0;
  for (let i = 0; i < x.length; i++)
    worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / (Math.abs(y[i]!) + 1e-3));
  return worst;
}

type Loss = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Scalar;

/** Same value, and the same gradients in x, γ and β, as the tfjs reference. */
function expectLikeReference(
  ours: Loss,
  reference: Loss,
  inputs: [tf.Tensor, tf.Tensor, tf.Tensor],
): void {
  expect(ours(...inputs).dataSync()[0]).toBeCloseTo(reference(...inputs).dataSync()[0]!, 3);
  const g1 = tf.grads(ours)(inputs);
  const g2 = tf.grads(reference)(inputs);
  for (let i = 0; i < 3; i++) expect(maxRelativeError(g1[i]!, g2[i]!)).toBeLessThan(1e-3);
}

describe('training-mode batch norm', () => {
  it('matches tfjs moments + batchNorm in value and in all three gradients', () => {
    const x = tf.randomNormal([6, 5, 4, 3], 2, 3, 'float32', 1) as tf.Tensor4D;
    const gamma = tf.randomNormal([3], 1, 0.5, 'float32', 2);
    const beta = tf.randomNormal([3], 0, 0.5, 'float32', 3);
    const weights = tf.randomNormal([6, 5, 4, 3], 0, 1, 'float32', 4);
    const moments: tf.Tensor[] = [];
    const ours: Loss = (a, g, b) =>
      tf.sum(
        tf.mul(
          trainingBatchNorm(a as tf.Tensor4D, g, b, 1e-3, (m, v) =>
            moments.push(tf.keep(m), tf.keep(v)),
          ),
          weights,
        ),
      );
    const reference: Loss = (a, g, b) => {
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      return tf.sum(
        tf.mul(
          tf.batchNorm4d(
            a as tf.Tensor4D,
            mean as tf.Tensor1D,
            variance as tf.Tensor1D,
            b as tf.Tensor1D,
            g as tf.Tensor1D,
            1e-3,
          ),
          weights,
        ),
      );
    };
    expectLikeReference(ours, reference, [x, gamma, beta]);
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    expect(maxRelativeError(moments[0]!, mean)).toBeLessThan(1e-5);
    expect(maxRelativeError(moments[1]!, variance)).toBeLessThan(1e-4);
  });
});

describe('batch norm on frozen statistics', () => {
  it('matches tfjs batchNorm with fixed moments in value and in all three gradients', () => {
    const x = tf.randomNormal([6, 5, 4, 3], 2, 3, 'float32', 5) as tf.Tensor4D;
    const gamma = tf.randomNormal([3], 1, 0.5, 'float32', 6);
    const beta = tf.randomNormal([3], 0, 0.5, 'float32', 7);
    const mean = tf.tensor1d([1.5, 2, -0.5]);
    const variance = tf.tensor1d([4, 9, 0.25]);
    const weights = tf.randomNormal([6, 5, 4, 3], 0, 1, 'float32', 8);
    const ours: Loss = (a, g, b) =>
      tf.sum(tf.mul(frozenBatchNorm(a as tf.Tensor4D, mean, variance, g, b, 1e-3), weights));
    const reference: Loss = (a, g, b) =>
      tf.sum(
        tf.mul(
          tf.batchNorm4d(
            a as tf.Tensor4D,
            mean,
            variance,
            b as tf.Tensor1D,
            g as tf.Tensor1D,
            1e-3,
          ),
          weights,
        ),
      );
    expectLikeReference(ours, reference, [x, gamma, beta]);
  });
});
