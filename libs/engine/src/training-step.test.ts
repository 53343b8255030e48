import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { beforeAll, expect, it } from 'vitest';
import { randomTensor, seeded } from '../test/helpers';
import { initEngine, quietCpuBackend } from './index';

// A miniature of the project's model: conv-bn-relu-pool feature extractor (one strided and one
// dilated convolution), a router with top-2 masked softmax gating over four linear experts,
// and a per-class bias looked up with gather. Trained with SGD on fixed data on the cpu
// backend and on wasm; the loss curves must agree and wasm must not accumulate tensors.

const BATCH = 8;
const EXPERTS = 4;
const CLASSES = 10;
const STEPS = 5;

interface Run {
  losses: number[];
  tensors: number[];
  buffers: number[];
}

async function train(backendName: string): Promise<Run> {
  await tf.setBackend(backendName);
  quietCpuBackend();
  let seed = 100;
  const param = (shape: number[], scale: number) =>
    tf.variable(tf.mul(randomTensor(shape, seed++), scale));
  const conv1 = param([3, 3, 3, 8], 0.3);
  const gamma = tf.variable(tf.ones([8]));
  const beta = tf.variable(tf.zeros([8]));
  const conv2 = param([3, 3, 8, 16], 0.15);
  const conv3 = param([3, 3, 16, 16], 0.1);
  const router = param([64, EXPERTS], 0.2);
  const experts = param([64, EXPERTS * CLASSES], 0.2);
  const classBias = param([CLASSES, 1], 0.1);
  const vars = [conv1, gamma, beta, conv2, conv3, router, experts, classBias];

  const x = tf.tensor4d(seeded(BATCH * 12 * 12 * 3, 7), [BATCH, 12, 12, 3]);
  const labels = tf.tensor1d([3, 1, 4, 1, 5, 9, 2, 6], 'int32');
  const optimizer = tf.train.sgd(0.5);

  const loss = (): tf.Scalar => {
    let h = tf.conv2d(x, conv1 as tf.Tensor4D, 1, 'same');
    const { mean, variance } = tf.moments(h, [0, 1, 2]);
    h = tf.add(tf.mul(tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, 1e-5))), gamma), beta);
    h = tf.maxPool(tf.relu(h), 2, 2, 'valid'); // 6x6x8
    h = tf.relu(tf.conv2d(h, conv2 as tf.Tensor4D, 2, 'same')); // 3x3x16
    h = tf.relu(tf.conv2d(h, conv3 as tf.Tensor4D, 1, 'same', 'NHWC', 2));
    h = tf.avgPool(h, 2, 1, 'valid'); // 2x2x16
    const features = tf.reshape(h, [BATCH, 64]);

    const gateLogits = tf.matMul(features, router);
    const { indices } = tf.topk(gateLogits, 2);
    const chosen = tf.sum(tf.oneHot(indices, EXPERTS), 1);
    const masked = tf.where(tf.cast(chosen, 'bool'), gateLogits, tf.fill(gateLogits.shape, -1e9));
    const gates = tf.softmax(masked);
    const perExpert = tf.reshape(tf.matMul(features, experts), [BATCH, EXPERTS, CLASSES]);
    const logits = tf.sum(tf.mul(perExpert, tf.expandDims(gates, 2)), 1);

    const task = tf.losses.softmaxCrossEntropy(tf.oneHot(labels, CLASSES), logits);
    const bias = tf.mean(tf.square(tf.gather(classBias, labels)));
    const balance = tf.mul(tf.sum(tf.square(tf.mean(gates, 0))), 0.01);
    return tf.add(tf.add(task, bias), balance) as tf.Scalar;
  };

  const run: Run = { losses: [], tensors: [], buffers: [] };
  for (let i = 0; i < STEPS; i++) {
    const cost = optimizer.minimize(loss, true, vars)!;
    run.losses.push(cost.dataSync()[0]!);
    cost.dispose();
    run.tensors.push(tf.memory().numTensors);
    run.buffers.push(tf.backend().numDataIds());
  }
  optimizer.dispose();
  tf.dispose([...vars, x, labels]);
  return run;
}

beforeAll(async () => {
  await initEngine({ engine: 'wasm', log: () => undefined });
});

it('trains the same on wasm as on cpu, without leaking', async () => {
  const cpu = await train('cpu');
  const wasm = await train('wasm');
  expect(tf.backend() as BackendWasm).toHaveProperty('wasm');

  // The model does learn (so a broken gradient could not pass unnoticed) ...
  expect(cpu.losses[STEPS - 1]!).toBeLessThan(cpu.losses[0]! * 0.95);
  // ... and wasm follows the reference curve step by step.
  for (let i = 0; i < STEPS; i++) {
    expect(Math.abs(wasm.losses[i]! - cpu.losses[i]!)).toBeLessThanOrEqual(
      1e-4 * Math.abs(cpu.losses[i]!) + 1e-6,
    );
  }
  expect(new Set(wasm.tensors.slice(1)).size).toBe(1);
  expect(new Set(wasm.buffers.slice(1)).size).toBe(1);
});
