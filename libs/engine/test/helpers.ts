import * as tf from '@tensorflow/tfjs-core';

// Helpers for src/*.test.ts; outside src so the build does not ship them.

/** Deterministic values in [-1, 1) (mulberry32), identical on every backend. */
export function seeded(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let a = seed >>> 0;
  for (let i = 0; i < size; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

export function randomTensor(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(seeded(tf.util.sizeFromShape(shape), seed), shape);
}

/** max |a − b| / max |b|: 0 for identical arrays, scale-free otherwise. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new Error(`length ${actual.length} differs from expected ${expected.length}`);
  }
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  if (Number.isNaN(diff)) return Number.POSITIVE_INFINITY;
  return scale === 0 ? diff : diff / scale;
}

/** Runs `fn` on the named backend and returns plain arrays, leaving no tensors behind. */
export async function onBackend(
  backendName: string,
  fn: () => tf.Tensor | tf.Tensor[],
): Promise<Float32Array[]> {
  await tf.setBackend(backendName);
  const values: Float32Array[] = [];
  tf.tidy(() => {
    const out = fn();
    for (const t of Array.isArray(out) ? out : [out]) {
      values.push(Float32Array.from(t.dataSync() as Float32Array | Int32Array));
    }
  });
  return values;
}
