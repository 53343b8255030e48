import { util, type BatchMatMulAttrs, type TensorInfo } from '@tensorflow/tfjs-core';
import { input, release, runBuiltin, type WasmKernelArgs } from './wasm-kernel';

/**
 * The backend hands a matmul to XNNPACK only when neither operand is transposed and there is
 * one batch; otherwise it runs a scalar loop. Dense-layer gradients are exactly the transposed
 * cases (x^T·dy and dy·W^T), so transpose the operand explicitly (cheap next to the product)
 * and take the fast path.
 */
export function batchMatMul({ inputs, backend, attrs }: WasmKernelArgs): TensorInfo {
  const a = input(inputs, 'a');
  const b = input(inputs, 'b');
  const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
  const single = (t: TensorInfo) => util.sizeFromShape(t.shape.slice(0, -2)) === 1;
  if ((!transposeA && !transposeB) || !single(a) || !single(b) || a.dtype !== 'float32') {
    return runBuiltin('BatchMatMul', backend, inputs, attrs);
  }
  const swapLast = (t: TensorInfo) => {
    const rank = t.shape.length;
    const perm = [...Array(rank).keys()];
    perm[rank - 2] = rank - 1;
    perm[rank - 1] = rank - 2;
    return runBuiltin('Transpose', backend, { x: t }, { perm });
  };
  const a2 = transposeA ? swapLast(a) : a;
  const b2 = transposeB ? swapLast(b) : b;
  const out = runBuiltin(
    'BatchMatMul',
    backend,
    { a: a2, b: b2 },
    { transposeA: false, transposeB: false },
  );
  if (a2 !== a) release(backend, a2);
  if (b2 !== b) release(backend, b2);
  return out;
}
