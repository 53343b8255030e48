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

// First layers (3 input channels: patch 27) run 2x faster as a matmul; from patch ~288
// (3x3x32) on, the convolution is as fast or faster and needs no im2col buffer.
let SMALL_PATCH = 64;
export function setSmallPatch(n: number): void { SMALL_PATCH = n; }

// Rows of the im2col matrix per matmul: keeps the packed operands cache-sized (XNNPACK does
// not block the reduction dimension), 10–25% faster than one matmul over the whole batch.
const CHUNK_ROWS = 8192;

/**
 * dW as [patch, rows] · [rows, outC]: the transposed im2col of x (built here) times dy as it
 * is, so XNNPACK's fast path applies (no transposed operand), summed over batch chunks.
 */
function viaMatMul(
  backend: BackendWasm,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { batchSize, outHeight, outWidth, outChannels, filterShape } = info;
  const pixels = outHeight * outWidth;
  const imagesPerChunk = Math.max(1, Math.floor(CHUNK_ROWS / pixels));
  const patch = info.filterHeight * info.filterWidth * info.inChannels;
  const acc = new Float64Array(patch * outChannels);

  for (let n0 = 0; n0 < batchSize; n0 += imagesPerChunk) {
    const n1 = Math.min(batchSize, n0 + imagesPerChunk);
    const rows = (n1 - n0) * pixels;
    const whole = n0 === 0 && n1 === batchSize;
    const cols = backend.makeOutput([patch, rows], 'float32');
    const dyRows = whole
      ? { dataId: dy.dataId, shape: [rows, outChannels], dtype: dy.dtype }
      : backend.makeOutput([rows, outChannels], 'float32');
    if (!whole) {
      const from = n0 * pixels * outChannels;
      f32View(backend, dyRows).set(f32View(backend, dy).subarray(from, from + rows * outChannels));
    }
    im2colTransposed(f32View(backend, x), f32View(backend, cols), info, n0, n1);
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

/** cols[(p·fw + q)·inC + c][r] = x[n, i·s+p−top, j·s+q−left, c] (0 in padding), r over n0..n1. */
function im2colTransposed(
  xs: Float32Array,
  cols: Float32Array,
  info: backend_util.Conv2DInfo,
  n0: number,
  n1: number,
): void {
  const { inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight, strideWidth } = info;
  const { filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const rows = (n1 - n0) * outHeight * outWidth;
  let r = 0;
  for (let n = n0; n < n1; n++) {
    for (let i = 0; i < outHeight; i++) {
      for (let j = 0; j < outWidth; j++, r++) {
        for (let p = 0; p < filterHeight; p++) {
          const xR = i * strideHeight + p - top;
          for (let q = 0; q < filterWidth; q++) {
            const xC = j * strideWidth + q - left;
            let to = (p * filterWidth + q) * inChannels * rows + r;
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
