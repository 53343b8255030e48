import { findBackend } from '@tensorflow/tfjs-core';

/**
 * tfjs-backend-cpu prints a banner on its first tensor under Node.js ("looks like you are
 * running TensorFlow.js in Node.js … install our node backend"). Lethe picks the engine itself
 * and says which one and why, once; the banner would only contradict that (cpu is chosen on
 * purpose, as the reference in tests or when forced). Marks the backend as already used, which
 * is the only thing the banner checks. A no-op when tfjs-backend-cpu is not registered.
 */
export function quietCpuBackend(name = 'cpu'): void {
  const cpu = findBackend(name) as { firstUse?: boolean } | null;
  if (cpu && cpu.firstUse === true) cpu.firstUse = false;
}
