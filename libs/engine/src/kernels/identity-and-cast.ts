import type { CastAttrs, TensorInfo } from '@tensorflow/tfjs-core';
import { input, runBuiltin, type WasmKernelArgs } from './wasm-kernel';

// The wasm backend copies the whole buffer for Identity and for a Cast to the same dtype; ~50
// full-size copies per CNN training step come from gradients and from tf.moments' cast. Share
// the buffer instead, as the cpu backend and the wasm backend's own Reshape do: tensors are
// immutable and the backend reference-counts shared buffers.

function share(x: TensorInfo, backend: WasmKernelArgs['backend']): TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

export function identity({ inputs, backend, attrs }: WasmKernelArgs): TensorInfo {
  const x = input(inputs, 'x');
  if (x.dtype === 'string') return runBuiltin('Identity', backend, inputs, attrs);
  return share(x, backend);
}

export function cast({ inputs, backend, attrs }: WasmKernelArgs): TensorInfo {
  const x = input(inputs, 'x');
  const { dtype } = attrs as unknown as CastAttrs;
  if (x.dtype !== dtype || x.dtype === 'string') return runBuiltin('Cast', backend, inputs, attrs);
  return share(x, backend);
}
