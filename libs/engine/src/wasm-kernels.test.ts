import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { onBackend, randomTensor, relativeError } from '../test/helpers';
import { initEngine, quietCpuBackend } from './index';

// Every case runs the same computation on wasm (this library's kernels) and on the cpu
// backend (tfjs's reference JavaScript kernels) and compares. cpu convolutions are ~100x
// slower, so shapes stay small. The conv cases cover both filter-gradient formulations
// (patch fh·fw·inC up to 64 and above) and the zero-stuffed strided input gradient.

const TOLERANCE = 1e-4;

type Pad =
  'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
  dilations?: number;
}

const convCases: ConvCase[] = [
  { x: [2, 9, 7, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { x: [2, 9, 7, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { x: [1, 8, 10, 5], filter: [3, 2, 5, 6], strides: 2, pad: 'valid' },
  { x: [2, 11, 9, 2], filter: [5, 5, 2, 3], strides: 2, pad: 'valid' },
  { x: [1, 12, 5, 3], filter: [4, 4, 3, 5], strides: 2, pad: 'same' },
  { x: [3, 6, 6, 8], filter: [1, 1, 8, 16], strides: 1, pad: 'valid' },
  { x: [2, 7, 7, 16], filter: [3, 3, 16, 8], strides: 1, pad: 'same' },
  { x: [4, 16, 16, 16], filter: [3, 3, 16, 32], strides: 1, pad: 'same' },
  { x: [2, 9, 9, 8], filter: [3, 3, 8, 4], strides: 2, pad: 'same' },
  { x: [2, 10, 9, 8], filter: [3, 3, 8, 4], strides: 2, pad: 'valid' },
  { x: [2, 7, 7, 4], filter: [1, 1, 4, 3], strides: 2, pad: 'same' },
  { x: [2, 8, 7, 3], filter: [3, 3, 3, 4], strides: [2, 1], pad: 'same' },
  {
    // Padding wider than the filter: the input gradient falls back to the built-in kernel.
    x: [1, 6, 6, 2],
    filter: [3, 3, 2, 2],
    strides: 2,
    pad: [
      [0, 0],
      [3, 1],
      [0, 2],
      [0, 0],
    ],
  },
  // More im2col rows than one chunk holds, split mid-image.
  { x: [12, 32, 32, 3], filter: [3, 3, 3, 8], strides: 1, pad: 'same' },
  { x: [1, 9, 8, 4], filter: [3, 3, 4, 8], strides: 1, pad: 'same', dilations: 2 },
  { x: [2, 10, 7, 3], filter: [3, 3, 3, 2], strides: 1, pad: 'valid', dilations: 2 },
  {
    x: [2, 6, 6, 3],
    filter: [3, 3, 3, 2],
    strides: 1,
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
];

function convGrads(c: ConvCase): tf.Tensor[] {
  const x = randomTensor(c.x, 1) as tf.Tensor4D;
  const filter = randomTensor(c.filter, 2) as tf.Tensor4D;
  // A random upstream gradient, so every output position has its own weight.
  const weigh = (y: tf.Tensor) => tf.sum(tf.mul(y, randomTensor(y.shape, 3)));
  const conv = (a: tf.Tensor, b: tf.Tensor) =>
    weigh(
      tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1),
    );
  return tf.grads(conv)([x, filter]);
}

beforeAll(async () => {
  await initEngine({ engine: 'wasm', log: () => undefined });
  await tf.setBackend('cpu');
  quietCpuBackend();
});

describe('conv2d gradients on wasm match the cpu backend', () => {
  it.each(convCases)(
    'x $x filter $filter stride $strides pad $pad dilation $dilations',
    async (c) => {
      const [dxCpu, dwCpu] = await onBackend('cpu', () => convGrads(c));
      const [dxWasm, dwWasm] = await onBackend('wasm', () => convGrads(c));
      expect(relativeError(dwWasm!, dwCpu!)).toBeLessThanOrEqual(TOLERANCE);
      expect(relativeError(dxWasm!, dxCpu!)).toBeLessThanOrEqual(TOLERANCE);
    },
  );
});

describe('other training kernels on wasm match the cpu backend', () => {
  const compare = async (fn: () => tf.Tensor | tf.Tensor[], tolerance = TOLERANCE) => {
    const expected = await onBackend('cpu', fn);
    const actual = await onBackend('wasm', fn);
    expect(actual).toHaveLength(expected.length);
    actual.forEach((a, i) => expect(relativeError(a, expected[i]!)).toBeLessThanOrEqual(tolerance));
  };

  it('UnsortedSegmentSum, dropping out-of-range ids', () =>
    compare(() => {
      const ids = tf.tensor1d([2, 0, 2, -1, 5, 1, 2], 'int32');
      return tf.unsortedSegmentSum(randomTensor([7, 3, 2], 4), ids, 4);
    }));

  it('gather gradients (UnsortedSegmentSum) on both axes, with repeated indices', () =>
    compare(() => {
      const x = randomTensor([5, 6], 5);
      const rows = tf.tensor1d([4, 0, 4, 2, 4], 'int32');
      const cols = tf.tensor1d([1, 1, 5], 'int32');
      const loss = (t: tf.Tensor) =>
        tf.add(
          tf.sum(tf.mul(tf.gather(t, rows, 0), randomTensor([5, 6], 6))),
          tf.sum(tf.mul(tf.gather(t, cols, 1), randomTensor([5, 3], 7))),
        );
      return tf.grad(loss)(x);
    }));

  it('gather rows along axis 0 (images, int32, repeats) and fall back elsewhere', () =>
    compare(() => [
      tf.gather(randomTensor([6, 4, 3, 2], 11), tf.tensor1d([5, 0, 5, 2], 'int32')),
      tf.gather(
        tf.tensor2d(
          [
            [1, 2],
            [3, 4],
            [5, 6],
          ],
          [3, 2],
          'int32',
        ),
        tf.tensor1d([2, 2, 0], 'int32'),
      ),
      tf.gather(randomTensor([4, 5], 12), tf.tensor1d([4, 0], 'int32'), 1),
      tf.gather(
        randomTensor([4, 5], 13),
        tf.tensor2d(
          [
            [1, 3],
            [0, 0],
          ],
          [2, 2],
          'int32',
        ),
      ),
    ]));

  it('depthwise conv2d gradients', () =>
    compare(() => {
      const x = randomTensor([2, 7, 6, 3], 8) as tf.Tensor4D;
      const f = randomTensor([3, 3, 3, 2], 9) as tf.Tensor4D;
      const loss = (a: tf.Tensor, b: tf.Tensor) => {
        const y = tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same');
        return tf.sum(tf.mul(y, randomTensor(y.shape, 10)));
      };
      return tf.grads(loss)([x, f]);
    }));

  it('max pool gradients send ties to the first maximum, like cpu', () =>
    compare(() => {
      // relu makes many all-zero windows: the tie rule decides where their gradient goes.
      const x = tf.relu(randomTensor([2, 8, 6, 5], 11)) as tf.Tensor4D;
      const pooled = (size: number, stride: number, pad: 'same' | 'valid') =>
        tf.grad((a: tf.Tensor) => {
          const y = tf.maxPool(a as tf.Tensor4D, size, stride, pad);
          return tf.sum(tf.mul(y, randomTensor(y.shape, 12)));
        })(x);
      return [pooled(2, 2, 'valid'), pooled(3, 2, 'same'), pooled(3, 1, 'valid')];
      // Overlapping windows add in another order; a wrong tie rule would be off by O(1).
    }, 1e-6));

  it('sums and means over leading, middle and trailing axes', () =>
    compare(() => {
      const x = randomTensor([4, 5, 6, 7], 13);
      return [
        tf.sum(x, [0, 1, 2]),
        tf.mean(x, [0, 1, 2], true),
        tf.mean(x, [1, 2]),
        tf.sum(x, 1),
        tf.sum(x, -1),
        tf.mean(x),
      ];
    }));

  it('casts, to the same dtype (shared buffer) and to another', () =>
    compare(() => {
      const x = randomTensor([3, 4], 18);
      return [tf.cast(x, 'float32'), tf.cast(tf.greater(x, 0), 'float32'), tf.cast(x, 'int32')];
    }));

  it('matMul with transposed operands', () =>
    compare(() => {
      const a = randomTensor([6, 9], 14);
      const b = randomTensor([9, 4], 15);
      const bt = randomTensor([4, 9], 16);
      const at = randomTensor([9, 6], 17);
      return [
        tf.matMul(a, bt, false, true),
        tf.matMul(at, b, true, false),
        tf.matMul(at, bt, true, true),
      ];
    }));
});

describe('memory', () => {
  it('kernels free their intermediates and shared Identity buffers survive disposal', async () => {
    await tf.setBackend('wasm');
    const wasm = tf.backend() as BackendWasm;
    const x = randomTensor([2, 8, 8, 4], 18) as tf.Tensor4D;
    const f = randomTensor([3, 3, 4, 6], 19) as tf.Tensor4D;
    const step = () =>
      tf.tidy(() => {
        const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(
            tf.maxPool(
              tf.relu(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')),
              2,
              2,
              'same',
            ),
          ),
        )([x, f]);
        dx!.dataSync();
        df!.dataSync();
      });
    step();
    const tensors = tf.memory().numTensors;
    const buffers = wasm.numDataIds();
    step();
    step();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(wasm.numDataIds()).toBe(buffers);

    const copy = tf.cast(x, 'float32');
    copy.dispose();
    expect(relativeError(x.dataSync(), randomTensor([2, 8, 8, 4], 18).dataSync())).toBe(0);
  });
});
