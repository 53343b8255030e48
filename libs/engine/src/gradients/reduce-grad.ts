import {
  backend_util,
  div,
  fill,
  Mean,
  mul,
  reshape,
  Sum,
  util,
  type GradConfig,
  type MeanAttrs,
  type SumAttrs,
  type Tensor,
} from '@tensorflow/tfjs-core';

// tfjs-core's Sum and Mean gradients broadcast dy by multiplying with `ones(x.shape)`, which is
// built as a JavaScript array and copied into the backend: ~25 ms for a batch-128 activation on
// wasm, twice per batch norm (tf.moments). `fill` runs in the backend (<1 ms). The values are
// identical: dy·1 is exact, and Mean divides the small dy before broadcasting instead of after.

function broadcastGrad(dy: Tensor, x: Tensor, axis: number | number[], scale: number): Tensor {
  const axes = util.parseAxisParam(axis, x.shape);
  const expandedShape = x.shape.slice();
  for (const a of axes) expandedShape[a] = 1;
  const expanded = reshape(dy, expandedShape);
  const scaled = scale === 1 ? expanded : div(expanded, scale);
  return mul(scaled, fill(x.shape, 1, 'float32'));
}

export const sumGradConfig: GradConfig = {
  kernelName: Sum,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved as [Tensor];
    const { axis } = attrs as unknown as SumAttrs;
    return { x: () => broadcastGrad(dy as Tensor, x, axis, 1) };
  },
};

export const meanGradConfig: GradConfig = {
  kernelName: Mean,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved as [Tensor];
    const { axis } = attrs as unknown as MeanAttrs;
    const axes = util.parseAxisParam(axis, x.shape);
    const [, reduceShape] = backend_util.computeOutAndReduceShapes(x.shape, axes);
    return {
      x: () => broadcastGrad(dy as Tensor, x, axis, util.sizeFromShape(reduceShape)),
    };
  },
};
