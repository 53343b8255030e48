import {
  cast,
  expandDims,
  mul,
  oneHot,
  sum,
  TopK,
  type GradConfig,
  type Tensor,
} from '@tensorflow/tfjs-core';

/**
 * tfjs-core has no TopK gradient, so any loss downstream of top-k gating fails to
 * differentiate ("gradient function not found for TopK") even when only the int32 indices are
 * used. d values / d x routes each value's gradient back to the position it came from; the
 * indices output carries none.
 */
export const topKGradConfig: GradConfig = {
  kernelName: TopK,
  inputsToSave: ['x'],
  outputsToSave: [false, true],
  gradFunc: (dy, saved) => {
    const [x, indices] = saved as [Tensor, Tensor];
    const dyValues = (dy as Tensor[])[0]!;
    const depth = x.shape[x.shape.length - 1]!;
    return {
      x: () => {
        const positions = cast(oneHot(cast(indices, 'int32'), depth), 'float32'); // [..., k, n]
        return sum(mul(positions, expandDims(dyValues, -1)), -2);
      },
    };
  },
};
