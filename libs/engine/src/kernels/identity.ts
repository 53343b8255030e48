import type { TensorInfo } from '@tensorflow/tfjs-core';
import { input, runBuiltin, type WasmKernelArgs } from './wasm-kernel';

/**
 * Shares the input's buffer instead of copying it, as the cpu backend and the wasm backend's
 * own Reshape do (tensors are immutable; the backend reference-counts shared buffers). Casts to
 * the same dtype and many gradients go through Identity, ~50 full-size copies per CNN step.
 */
export function identity({ inputs, backend, attrs }: WasmKernelArgs): TensorInfo {
  const x = input(inputs, 'x');
  if (x.dtype === 'string') return runBuiltin('Identity', backend, inputs, attrs);
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}
