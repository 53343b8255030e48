import {
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  engine,
  pad as padOp,
  Rank,
  reshape,
  slice,
  stridedSlice,
  tidy,
  type Conv2DAttrs,
  type GradConfig,
  type NamedAttrMap,
  type Tensor,
  type Tensor4D,
} from '@tensorflow/tfjs-core';

/**
 * Conv2D's gradient, extended to dilated convolutions (tfjs-core's throws "dilation rates
 * greater than 1 are not yet supported in gradients"). A convolution with dilation d equals one
 * with the filter zero-stuffed to size (k-1)·d+1 and dilation 1, so both gradients are the
 * undilated ones taken with the stuffed filter; the filter gradient then keeps every d-th tap.
 * Undilated convolutions get exactly tfjs-core's gradient.
 */
export const conv2dGradConfig: GradConfig = {
  kernelName: Conv2D,
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as [Tensor4D, Tensor4D];
    const { dilations, strides, pad, dataFormat, dimRoundingMode } =
      attrs as unknown as Conv2DAttrs;
    const [dh, dw] = typeof dilations === 'number' ? [dilations, dilations] : dilations;
    const common = { strides, pad, dataFormat, dimRoundingMode };
    if (dh === 1 && dw === 1) {
      return {
        x: () => backpropInput(dy as Tensor, filter, x.shape, common),
        filter: () => backpropFilter(x, dy as Tensor, filter.shape, common),
      };
    }
    const stuffed = () => stuffFilter(filter, dh, dw);
    return {
      x: () => backpropInput(dy as Tensor, stuffed(), x.shape, common),
      filter: () =>
        tidy(() => {
          const taps = stuffed().shape;
          const grad = backpropFilter(x, dy as Tensor, taps, common);
          return stridedSlice(grad, [0, 0, 0, 0], taps, [dh, dw, 1, 1]);
        }),
    };
  },
};

type Common = Pick<Conv2DAttrs, 'strides' | 'pad' | 'dataFormat' | 'dimRoundingMode'>;

function backpropInput(dy: Tensor, filter: Tensor4D, inputShape: number[], attrs: Common): Tensor {
  return engine().runKernel(Conv2DBackpropInput, { dy, filter }, {
    ...attrs,
    inputShape,
  } as unknown as NamedAttrMap) as Tensor;
}

function backpropFilter(x: Tensor, dy: Tensor, filterShape: number[], attrs: Common): Tensor {
  return engine().runKernel(Conv2DBackpropFilter, { x, dy }, {
    ...attrs,
    filterShape,
  } as unknown as NamedAttrMap) as Tensor;
}

/** [kh, kw, in, out] → [(kh-1)·dh+1, (kw-1)·dw+1, in, out] with zeros between the taps. */
export function stuffFilter(filter: Tensor4D, dh: number, dw: number): Tensor4D {
  return tidy(() => {
    const [kh, kw, inC, outC] = filter.shape;
    const rows = padOp(reshape(filter, [kh, 1, kw * inC * outC]), [
      [0, 0],
      [0, dh - 1],
      [0, 0],
    ]);
    const tallH = (kh - 1) * dh + 1;
    const tall = slice(reshape(rows, [kh * dh, kw, inC, outC]), 0, tallH);
    const cols = padOp(reshape(tall, [tallH, kw, 1, inC * outC]), [
      [0, 0],
      [0, 0],
      [0, dw - 1],
      [0, 0],
    ]);
    return slice(
      reshape<Rank.R4>(cols, [tallH, kw * dw, inC, outC]),
      [0, 0, 0, 0],
      [tallH, (kw - 1) * dw + 1, inC, outC],
    );
  });
}
