import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  backend_util,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { f32View, input, release, runBuiltin, type WasmKernelArgs } from './wasm-kernel';

type Shape4 = [number, number, number, number];

/**
 * dW[p,q,c,o] = Σ_{n,i,j} x[n, i·s+p, j·s+q, c] · dy[n,i,j,o], computed with XNNPACK (the
 * backend's GEMM and convolution) instead of a scalar loop, which was 10–20x slower. Two
 * formulations; which is faster depends on the patch size fh·fw·inC (measured at batch 128).
 */
export function conv2dBackpropFilter({ inputs, backend, attrs }: WasmKernelArgs): TensorInfo {
  const x = input(inputs, 'x');
  const dy = input(inputs, 'dy');
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
    attrs as unknown as Conv2DBackpropFilterAttrs;
  const info = backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    backend_util.convertConv2DDataFormat(dataFormat),
  );
  if (info.dataFormat !== 'channelsLast') {
    throw new Error(`${Conv2DBackpropFilter} on wasm supports NHWC only, got ${dataFormat}`);
  }
  const patch = info.filterHeight * info.filterWidth * info.inChannels;
  return patch <= SMALL_PATCH
    ? viaMatMul(backend, x, dy, info)
    : viaConvolution(backend, x, dy, info);
}

// Measured at batch 128 (ms, im2col-matmul vs convolution): patch 27 (3x3x3, first layers)
// 36 vs 44; patch 288 at 16x16 69 vs 79, at 32x32 185 vs 169; patch 576 63 vs 65. Only the
// small-patch win is clear, and the convolution needs no im2col buffer.
const SMALL_PATCH = 64;

// The reduction runs over batch·OH·OW rows (131072 for 128 images of 32x32). XNNPACK does not
// block that dimension, so one matmul re-streams both operands from memory for every register
// tile; chunks of rows whose im2col block (patch × rows floats, 1 MB) fits in L2 avoid that.
const CHUNK_FLOATS = 1 << 18;
const CHUNK_MIN_ROWS = 256;

/**
 * dW as [patch, rows] · [rows, outC]: the transposed im2col of x (built here) times dy as it
 * is, so XNNPACK's fast path applies (no transposed operand), summed over chunks of rows.
 */
function viaMatMul(
  backend: BackendWasm,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { batchSize, outHeight, outWidth, outChannels, filterShape } = info;
  const totalRows = batchSize * outHeight * outWidth;
  const patch = info.filterHeight * info.filterWidth * info.inChannels;
  const chunkRows = Math.max(CHUNK_MIN_ROWS, Math.floor(CHUNK_FLOATS / patch));
  const acc = new Float64Array(patch * outChannels);

  for (let r0 = 0; r0 < totalRows; r0 += chunkRows) {
    const r1 = Math.min(totalRows, r0 + chunkRows);
    const rows = r1 - r0;
    const whole = rows === totalRows;
    const cols = backend.makeOutput([patch, rows], 'float32');
    const dyRows = whole
      ? { dataId: dy.dataId, shape: [rows, outChannels], dtype: dy.dtype }
      : backend.makeOutput([rows, outChannels], 'float32');
    if (!whole) {
      const dys = f32View(backend, dy).subarray(r0 * outChannels, r1 * outChannels);
      f32View(backend, dyRows).set(dys);
    }
    im2colTransposed(f32View(backend, x), f32View(backend, cols), info, r0, r1);
    const product = runBuiltin(
      'BatchMatMul',
      backend,
      { a: cols, b: dyRows },
      { transposeA: false, transposeB: false },
    );
    const values = f32View(backend, product);
    for (let k = 0; k < acc.length; k++) acc[k] += values[k];
    release(backend, product, cols);
    if (!whole) release(backend, dyRows);
  }
  const dW = backend.makeOutput(filterShape, 'float32');
  f32View(backend, dW).set(acc);
  return dW;
}

/**
 * cols[(p·fw + q)·inC + c][r − r0] = x[n, i·s+p−top, j·s+q−left, c] (0 in padding), where
 * r = (n·OH + i)·OW + j runs over r0..r1.
 */
function im2colTransposed(
  xs: Float32Array,
  cols: Float32Array,
  info: backend_util.Conv2DInfo,
  r0: number,
  r1: number,
): void {
  const { inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight, strideWidth } = info;
  const { filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const rows = r1 - r0;
  for (let r = r0; r < r1; r++) {
    const j = r % outWidth;
    const i = Math.floor(r / outWidth) % outHeight;
    const n = Math.floor(r / (outWidth * outHeight));
    for (let p = 0; p < filterHeight; p++) {
      const xR = i * strideHeight + p - top;
      for (let q = 0; q < filterWidth; q++) {
        const xC = j * strideWidth + q - left;
        let to = (p * filterWidth + q) * inChannels * rows + (r - r0);
        if (xR < 0 || xR >= inHeight || xC < 0 || xC >= inWidth) {
          for (let c = 0; c < inChannels; c++, to += rows) cols[to] = 0;
        } else {
          const from = ((n * inHeight + xR) * inWidth + xC) * inChannels;
          for (let c = 0; c < inChannels; c++, to += rows) cols[to] = xs[from + c];
        }
      }
    }
  }
}

/**
 * dW as one forward convolution: x laid out as [inC, H, W, N] (channels become the batch, the
 * batch becomes the channels) convolved with dy laid out as [OH, OW, N, outC], used as a filter
 * dilated by the stride. The output [inC, fh, fw, outC] is transposed back.
 */
function viaConvolution(
  backend: BackendWasm,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth } = info;
  const { filterHeight, filterWidth, inChannels, outChannels } = info;
  const { top, left } = info.padInfo;
  // Pad the far side only as much as needed for the output to cover the whole filter; input
  // rows the forward convolution never read are cut off by the crop below instead.
  const bottom = Math.max(0, filterHeight + (outHeight - 1) * strideHeight - inHeight - top);
  const right = Math.max(0, filterWidth + (outWidth - 1) * strideWidth - inWidth - left);

  const xT = runBuiltin('Transpose', backend, { x }, { perm: [3, 1, 2, 0] });
  const dyT = runBuiltin('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] });
  const conv = runBuiltin(
    'Conv2D',
    backend,
    { x: xT, filter: dyT },
    {
      strides: [1, 1],
      dilations: [strideHeight, strideWidth],
      pad: [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ],
      dataFormat: 'NHWC',
    },
  );
  release(backend, xT, dyT);

  let cropped = conv;
  if (conv.shape[1] !== filterHeight || conv.shape[2] !== filterWidth) {
    cropped = runBuiltin(
      'Slice',
      backend,
      { x: conv },
      { begin: [0, 0, 0, 0], size: [inChannels, filterHeight, filterWidth, outChannels] },
    );
    release(backend, conv);
  }
  const dW = runBuiltin('Transpose', backend, { x: cropped }, { perm: [1, 2, 0, 3] });
  release(backend, cropped);
  return dW;
}
