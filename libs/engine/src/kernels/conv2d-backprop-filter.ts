import {
  backend_util,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { input, release, runBuiltin, type WasmKernelArgs } from './wasm-kernel';

type Shape4 = [number, number, number, number];

/**
 * The filter gradient as one forward convolution, so it runs on XNNPACK's GEMM instead of a
 * scalar loop: dW[p,q,c,o] = Σ_{n,i,j} x[n, i·s+p, j·s+q, c] · dy[n,i,j,o] is a convolution of
 * x laid out as [C, H, W, N] (channels become the batch, the batch becomes the channels) with dy
 * laid out as [OH, OW, N, O] used as a filter dilated by the stride. Measured on batch 128
 * (32x32x3→32, 16x16x32→64, 16x16x64→128 stride 2): 4–20x faster than im2col + BatchMatMul
 * (BatchMatMul with a transposed operand takes the backend's scalar path) and 5–20x faster
 * than a JavaScript loop.
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
