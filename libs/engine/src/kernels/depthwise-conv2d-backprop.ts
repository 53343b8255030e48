import {
  backend_util,
  type DepthwiseConv2dNativeBackpropFilterAttrs,
  type DepthwiseConv2dNativeBackpropInputAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { f32View, input, type WasmKernelArgs } from './wasm-kernel';

type Shape4 = [number, number, number, number];

// Depthwise convolutions do little arithmetic per byte, so plain loops with the channel axis
// innermost (sequential reads of NHWC data) are close to memory speed here.

export function depthwiseConv2dNativeBackpropFilter({
  inputs,
  backend,
  attrs,
}: WasmKernelArgs): TensorInfo {
  const x = input(inputs, 'x');
  const dy = input(inputs, 'dy');
  const { strides, dilations, pad, dimRoundingMode, filterShape } =
    attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filterShape,
    strides,
    dilations,
    pad,
    dimRoundingMode,
    true,
  );
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const { filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const multiplier = outChannels / inChannels;
  const acc = new Float64Array(filterHeight * filterWidth * outChannels);

  const dW = backend.makeOutput(filterShape, 'float32');
  const xs = f32View(backend, x);
  const dys = f32View(backend, dy);
  for (let b = 0; b < batchSize; b++) {
    for (let yR = 0; yR < outHeight; yR++) {
      for (let yC = 0; yC < outWidth; yC++) {
        const dyBase = ((b * outHeight + yR) * outWidth + yC) * outChannels;
        for (let p = 0; p < filterHeight; p++) {
          const xR = yR * strideHeight + p * dilationHeight - top;
          if (xR < 0 || xR >= inHeight) continue;
          for (let q = 0; q < filterWidth; q++) {
            const xC = yC * strideWidth + q * dilationWidth - left;
            if (xC < 0 || xC >= inWidth) continue;
            const xBase = ((b * inHeight + xR) * inWidth + xC) * inChannels;
            // The filter's [in, multiplier] layout flattens to the output channel index.
            const wBase = (p * filterWidth + q) * outChannels;
            for (let o = 0; o < outChannels; o++) {
              acc[wBase + o] += xs[xBase + Math.floor(o / multiplier)] * dys[dyBase + o];
            }
          }
        }
      }
    }
  }
  f32View(backend, dW).set(acc);
  return dW;
}

export function depthwiseConv2dNativeBackpropInput({
  inputs,
  backend,
  attrs,
}: WasmKernelArgs): TensorInfo {
  const dy = input(inputs, 'dy');
  const filter = input(inputs, 'filter');
  const { strides, dilations, pad, dimRoundingMode, inputShape } =
    attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  const info = backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as Shape4,
    strides,
    dilations,
    pad,
    dimRoundingMode,
    true,
  );
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const { filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const multiplier = outChannels / inChannels;
  const acc = new Float64Array(batchSize * inHeight * inWidth * inChannels);

  const dx = backend.makeOutput(inputShape, 'float32');
  const dys = f32View(backend, dy);
  const ws = f32View(backend, filter);
  for (let b = 0; b < batchSize; b++) {
    for (let yR = 0; yR < outHeight; yR++) {
      for (let yC = 0; yC < outWidth; yC++) {
        const dyBase = ((b * outHeight + yR) * outWidth + yC) * outChannels;
        for (let p = 0; p < filterHeight; p++) {
          const xR = yR * strideHeight + p * dilationHeight - top;
          if (xR < 0 || xR >= inHeight) continue;
          for (let q = 0; q < filterWidth; q++) {
            const xC = yC * strideWidth + q * dilationWidth - left;
            if (xC < 0 || xC >= inWidth) continue;
            const xBase = ((b * inHeight + xR) * inWidth + xC) * inChannels;
            const wBase = (p * filterWidth + q) * outChannels;
            for (let o = 0; o < outChannels; o++) {
              acc[xBase + Math.floor(o / multiplier)] += ws[wBase + o] * dys[dyBase + o];
            }
          }
        }
      }
    }
  }
  f32View(backend, dx).set(acc);
  return dx;
}
