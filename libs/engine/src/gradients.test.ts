import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomTensor, relativeError } from '../test/helpers';
import { quietCpuBackend, registerTrainingGradients } from './index';

// The gradients this library defines itself are checked on the cpu backend against references
// that do not use them (hand-derived values, or tfjs-core's undilated gradient), so a mistake
// shared by every backend would still show.

beforeAll(async () => {
  await tf.setBackend('cpu');
  quietCpuBackend();
  registerTrainingGradients();
});

const read = (t: tf.Tensor) => Array.from(t.dataSync());

describe('registerTrainingGradients', () => {
  it('makes tfjs-core gradients available and is idempotent', () => {
    expect(tf.getGradient('RealDiv')).toBeDefined();
    expect(registerTrainingGradients()).toMatch(/^0 gradients from tfjs-core /);
  });

  it('TopK: each value gradient goes back to where the value came from', () => {
    const x = tf.tensor2d([
      [1, 5, 3, 0],
      [4, 2, 6, 8],
    ]);
    const dx = tf.grad((t: tf.Tensor) =>
      tf.sum(
        tf.mul(
          tf.topk(t, 2).values,
          tf.tensor2d([
            [10, 20],
            [30, 40],
          ]),
        ),
      ),
    )(x);
    expect(read(dx)).toEqual([0, 10, 20, 0, 0, 0, 40, 30]);
  });

  it('TopK: a loss that only uses the indices differentiates (to zero)', () => {
    const x = tf.tensor2d([[1, 5, 3, 0]]);
    const dx = tf.grad((t: tf.Tensor) =>
      tf.sum(tf.mul(t, tf.sum(tf.oneHot(tf.topk(t, 2).indices, 4), 1))),
    )(x);
    expect(read(dx)).toEqual([0, 1, 1, 0]);
  });

  it('Sum and Mean broadcast dy over the reduced axes', () => {
    const x = randomTensor([2, 3, 4], 1);
    const w = tf.tensor1d([1, 2, 3, 4]);
    const dSum = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.sum(t, [0, 1]), w)))(x);
    const dMean = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.mean(t, [0, 1]), w)))(x);
    const expected = Array.from({ length: 24 }, (_, i) => (i % 4) + 1);
    expect(read(dSum)).toEqual(expected);
    expect(
      relativeError(
        read(dMean),
        expected.map((v) => v / 6),
      ),
    ).toBeLessThan(1e-7);
  });

  it('Conv2D with dilation equals an undilated conv with a zero-stuffed filter', () => {
    for (const pad of ['same', 'valid'] as const) {
      const x = randomTensor([2, 9, 8, 3], 2) as tf.Tensor4D;
      const f = randomTensor([3, 2, 3, 4], 3) as tf.Tensor4D;
      const y = tf.conv2d(x, f, 1, pad, 'NHWC', 2);
      const dy = randomTensor(y.shape, 4);
      const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad, 'NHWC', 2), dy)),
      )([x, f]);

      // Reference: stuff the filter by hand, use tfjs-core's undilated gradients.
      const stuffed = tf.buffer([5, 3, 3, 4]);
      const fb = f.bufferSync();
      for (let p = 0; p < 3; p++)
        for (let q = 0; q < 2; q++)
          for (let c = 0; c < 3; c++)
            for (let o = 0; o < 4; o++) stuffed.set(fb.get(p, q, c, o), 2 * p, 2 * q, c, o);
      const [dxRef, dsRef] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad), dy)),
      )([x, stuffed.toTensor()]);
      const dsb = dsRef!.bufferSync();
      const dfRef = tf.buffer([3, 2, 3, 4]);
      for (let p = 0; p < 3; p++)
        for (let q = 0; q < 2; q++)
          for (let c = 0; c < 3; c++)
            for (let o = 0; o < 4; o++) dfRef.set(dsb.get(2 * p, 2 * q, c, o), p, q, c, o);

      expect(relativeError(read(dx!), read(dxRef!))).toBeLessThan(1e-6);
      expect(relativeError(read(df!), Array.from(dfRef.values))).toBeLessThan(1e-6);
    }
  });
});
