import { util, type TensorInfo, type UnsortedSegmentSumAttrs } from '@tensorflow/tfjs-core';
import { input, numericView, type WasmKernelArgs } from './wasm-kernel';

/**
 * out[s, ...] = Σ x[i, ...] over i with segmentIds[i] = s. Only the gradient of gather needs it
 * on this backend, so a sequential JavaScript pass is enough. Ids outside [0, numSegments) are
 * dropped, as in TensorFlow.
 */
export function unsortedSegmentSum({ inputs, backend, attrs }: WasmKernelArgs): TensorInfo {
  const x = input(inputs, 'x');
  const segmentIds = input(inputs, 'segmentIds');
  const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
  const idsRank = segmentIds.shape.length;
  if (!util.arraysEqual(x.shape.slice(0, idsRank), segmentIds.shape)) {
    throw new Error(
      `UnsortedSegmentSum: segmentIds shape ${segmentIds.shape} is not a prefix of x shape ${x.shape}`,
    );
  }
  const rowShape = x.shape.slice(idsRank);
  const rowSize = util.sizeFromShape(rowShape);
  const rows = util.sizeFromShape(segmentIds.shape);
  // Accumulate in float64, as the cpu backend effectively does, so the two agree closely.
  const acc = new Float64Array(numSegments * rowSize);

  const out = backend.makeOutput([numSegments, ...rowShape], x.dtype);
  const xs = numericView(backend, x);
  const ids = numericView(backend, segmentIds);
  for (let i = 0; i < rows; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const from = i * rowSize;
    const to = s * rowSize;
    for (let k = 0; k < rowSize; k++) acc[to + k] += xs[from + k];
  }
  numericView(backend, out).set(acc);
  return out;
}
