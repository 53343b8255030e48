import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '@lethe/engine';
import { MoEModel, type MoEConfig } from '../src';

export async function useWasm(): Promise<void> {
  await initEngine({ engine: 'wasm', log: () => undefined });
}

export function tinyModel(overrides: Partial<MoEConfig> = {}): MoEModel {
  return new MoEModel({
    preset: 'tiny',
    experts: 4,
    topK: 2,
    numClasses: 3,
    inputShape: [8, 8, 3],
    routerNoise: 1,
    balanceWeight: 0.01,
    seed: 7,
    ...overrides,
  });
}

/** A batch where the class is which channel is bright: learnable in a few dozen steps. */
export function toyBatch(
  n: number,
  seed = 0,
): { x: tf.Tensor4D; y: tf.Tensor1D; xs: Float32Array; ys: Int32Array } {
  const xs = new Float32Array(n * 8 * 8 * 3);
  const ys = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    ys[i] = (i + seed) % 3;
    for (let j = 0; j < 192; j++) {
      xs[i * 192 + j] = (j % 3 === ys[i] ? 1 : 0) + Math.sin(i * 7 + j + seed) * 0.3;
    }
  }
  return { x: tf.tensor4d(xs, [n, 8, 8, 3]), y: tf.tensor1d(ys, 'int32'), xs, ys };
}

export function weightsOf(model: MoEModel, part: Parameters<MoEModel['part']>[0]): Float32Array[] {
  return model
    .part(part)
    .params.all()
    .map((p) => Float32Array.from(p.variable.dataSync() as Float32Array));
}
