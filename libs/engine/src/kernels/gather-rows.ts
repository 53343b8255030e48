import { type GatherV2Attrs, type TensorInfo, util } from '@tensorflow/tfjs-core';
import { input, numericView, runBuiltin, type WasmKernelArgs } from './wasm-kernel';

/**
 * GatherV2 along axis 0 with 1-D indices — how the MoE hands each expert its samples — as one
 * typed-array row copy per index. The built-in kernel walks element by element and took ~3% of
 * a `small` training step; anything else (other axes, batch dims, bad indices) uses it.
 */
export function gatherRows(args: WasmKernelArgs): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = input(inputs, 'x');
  const indices = input(inputs, 'indices');
  const { axis, batchDims } = attrs as unknown as GatherV2Attrs;
  const parsedAxis = util.parseAxisParam(axis, x.shape)[0];
  const plain =
    parsedAxis === 0 &&
    (batchDims ?? 0) === 0 &&
    indices.shape.length === 1 &&
    (x.dtype === 'float32' || x.dtype === 'int32') &&
    indices.dtype === 'int32';
  if (!plain) {
    return runBuiltin('GatherV2', backend, inputs, attrs);
  }
  const rows = x.shape[0]!;
  const ids = numericView(backend, indices);
  for (let i = 0; i < ids.length; i++) {
    if (ids[i]! < 0 || ids[i]! >= rows || !Number.isInteger(ids[i])) {
      return runBuiltin('GatherV2', backend, inputs, attrs);
    }
  }
  const rowSize = util.sizeFromShape(x.shape.slice(1));
  const out = backend.makeOutput([ids.length, ...x.shape.slice(1)], x.dtype);
  // Views are taken after makeOutput: allocating may grow the wasm heap and detach older views.
  const src = numericView(backend, x);
  const dst = numericView(backend, out);
  const idx = numericView(backend, indices);
  for (let i = 0; i < idx.length; i++) {
    const from = idx[i]! * rowSize;
    dst.set(src.subarray(from, from + rowSize), i * rowSize);
  }
  return out;
}
