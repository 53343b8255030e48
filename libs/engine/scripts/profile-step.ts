/* eslint-disable no-console -- a command-line script: printing is its output */
/**
 * Training throughput of a small CIFAR-shaped CNN on the selected engine, and the kernels that
 * take the time.
 *
 *   npx tsx libs/engine/scripts/profile-step.ts [--batch=128] [--steps=5] [--arch=2conv|3conv]
 *     [--kernels=all|missing|naive] [--bn=moments|none]
 *
 * --kernels (wasm only) picks what this library registers: `all` (what initEngine does),
 * `missing` (only kernels the backend lacks, keeping its slower built-ins) or `naive` (as
 * `missing`, with a plain JavaScript filter gradient: the starting point before this work).
 * --bn: batch norm differentiated through tf.moments (default), or left out.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { initEngine, registerTrainingGradients, registerWasmTrainingKernels } from '../src/index';
import { naiveConv2dBackpropFilter } from './naive-conv2d-backprop-filter';

function arg(name: string, fallback: string): string {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? fallback : hit.slice(name.length + 3);
}

const batch = Number(arg('batch', '128'));
const steps = Number(arg('steps', '5'));
const arch = arg('arch', '2conv');
const kernels = arg('kernels', 'all');
const bn = arg('bn', 'moments');

interface ConvBlock {
  filter: tf.Variable;
  gamma: tf.Variable;
  beta: tf.Variable;
}

function heNormal(shape: number[], fanIn: number, seed: number): tf.Variable {
  return tf.variable(tf.randomNormal(shape, 0, Math.sqrt(2 / fanIn), 'float32', seed));
}

function block(inC: number, outC: number, seed: number): ConvBlock {
  return {
    filter: heNormal([3, 3, inC, outC], 9 * inC, seed),
    gamma: tf.variable(tf.ones([outC])),
    beta: tf.variable(tf.zeros([outC])),
  };
}

const AXES = [0, 1, 2];

function batchNormMoments(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, AXES);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), gamma), beta);
}

async function main(): Promise<void> {
  if (kernels === 'all') {
    const info = await initEngine({ log: () => undefined });
    console.log(`engine ${info.engine} (${info.reason})`);
  } else {
    await tf.setBackend('wasm');
    registerTrainingGradients();
    registerWasmTrainingKernels({ replaceBuiltins: false });
    if (kernels === 'naive') {
      tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
      tf.registerKernel({
        kernelName: 'Conv2DBackpropFilter',
        backendName: 'wasm',
        kernelFunc: naiveConv2dBackpropFilter,
      });
    }
    console.log(`engine wasm with kernels=${kernels}`);
  }

  const widths = arch === '3conv' ? [3, 32, 64, 128] : [3, 32, 64];
  const blocks = widths.slice(1).map((outC, i) => block(widths[i]!, outC, i + 1));
  const side = 32 >> blocks.length;
  const features = side * side * widths[widths.length - 1]!;
  const dense = heNormal([features, 10], features, 99);
  const bias = tf.variable(tf.zeros([10]));
  const x = tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 5);
  const labels = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 6) as tf.Tensor1D, 10);
  const optimizer = tf.train.sgd(0.01);

  const loss = (): tf.Scalar => {
    let h: tf.Tensor4D = x;
    for (const b of blocks) {
      const conv = tf.conv2d(h, b.filter as tf.Tensor4D, 1, 'same');
      const normed = bn === 'none' ? conv : batchNormMoments(conv, b.gamma, b.beta);
      h = tf.maxPool(tf.relu(normed) as tf.Tensor4D, 2, 2, 'valid');
    }
    const logits = tf.add(tf.matMul(tf.reshape(h, [batch, features]), dense), bias);
    return tf.losses.softmaxCrossEntropy(labels, logits);
  };
  const step = (): number => {
    const value = optimizer.minimize(loss, true)!;
    const out = value.dataSync()[0]!;
    value.dispose();
    return out;
  };

  step();
  step();
  const tensorsBefore = tf.memory().numTensors;
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  for (let i = 0; i < steps; i++) step();
  const msPerStep = (performance.now() - started) / steps;
  const cpu = process.cpuUsage(cpuStarted);
  // CPU time is the steadier figure on a shared machine (it leaves out time spent descheduled).
  const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / steps;
  console.log(
    `${arch} (bn ${bn}), batch ${batch}: ${msPerStep.toFixed(0)} ms/step, ` +
      `${((batch * 1000) / msPerStep).toFixed(0)} images/s; CPU ${cpuMsPerStep.toFixed(0)} ms/step, ` +
      `${((batch * 1000) / cpuMsPerStep).toFixed(0)} images/s per core ` +
      `(tensors ${tensorsBefore} → ${tf.memory().numTensors})`,
  );

  const profile = await tf.profile(() => {
    step();
  });
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of profile.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += ms;
    entry.calls++;
    byKernel.set(k.name, entry);
  }
  const total = [...byKernel.values()].reduce((sum, e) => sum + e.ms, 0);
  console.log(`kernel time in one profiled step: ${total.toFixed(0)} ms`);
  for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12)) {
    const share = ((100 * e.ms) / total).toFixed(0).padStart(3);
    console.log(`  ${name.padEnd(22)} ${e.ms.toFixed(1).padStart(8)} ms ${share}%  ×${e.calls}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
