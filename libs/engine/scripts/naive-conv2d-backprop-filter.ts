/**
 * The straightforward filter gradient (a JavaScript loop, like the cpu backend's), kept only as
 * the "before" reference for profile-step.ts --kernels=naive.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  backend_util,
  type Conv2DBackpropFilterAttrs,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

type Shape4 = [number, number, number, number];

export const naiveConv2dBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const x = inputs['x'] as TensorInfo;
  const dy = inputs['dy'] as TensorInfo;
  const { strides, pad, dimRoundingMode, filterShape } =
    attrs as unknown as Conv2DBackpropFilterAttrs;
  const info = backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const out = wasm.makeOutput(filterShape, 'float32');
  const xs = wasm.typedArrayFromHeap(x);
  const dys = wasm.typedArrayFromHeap(dy);
  const dw = wasm.typedArrayFromHeap(out);
  dw.fill(0);
  for (let b = 0; b < batchSize; b++) {
    for (let yR = 0; yR < outHeight; yR++) {
      for (let yC = 0; yC < outWidth; yC++) {
        const dyBase = ((b * outHeight + yR) * outWidth + yC) * outChannels;
        for (let p = 0; p < filterHeight; p++) {
          const xR = yR * strideHeight + p - top;
          if (xR < 0 || xR >= inHeight) continue;
          for (let q = 0; q < filterWidth; q++) {
            const xC = yC * strideWidth + q - left;
            if (xC < 0 || xC >= inWidth) continue;
            const xBase = ((b * inHeight + xR) * inWidth + xC) * inChannels;
            for (let c = 0; c < inChannels; c++) {
              const v = xs[xBase + c];
              const wBase = ((p * filterWidth + q) * inChannels + c) * outChannels;
              for (let o = 0; o < outChannels; o++) dw[wBase + o] += v * dys[dyBase + o];
            }
          }
        }
      }
    }
  }
  return out;
};
