import { backend_util, util, type SumAttrs, type TensorInfo } from '@tensorflow/tfjs-core';
import { f32View, input, runBuiltin, type WasmKernelArgs } from './wasm-kernel';

/**
 * Sum and Mean over a contiguous block of axes that is not the innermost one — e.g. axes
 * [0, 1, 2] of NHWC activations in batch norm and its gradient. The backend transposes the
 * reduced axes innermost first (a full copy); one sequential pass accumulating rows is
 * several times faster. Other reductions keep the backend's own kernel.
 */
export function sum(args: WasmKernelArgs): TensorInfo {
  return reduceBlock(args, 'Sum') ?? runBuiltin('Sum', args.backend, args.inputs, args.attrs);
}

export function mean(args: WasmKernelArgs): TensorInfo {
  return reduceBlock(args, 'Mean') ?? runBuiltin('Mean', args.backend, args.inputs, args.attrs);
}

function reduceBlock(
  { inputs, backend, attrs }: WasmKernelArgs,
  op: 'Sum' | 'Mean',
): TensorInfo | undefined {
  const x = input(inputs, 'x');
  const { axis, keepDims } = attrs as unknown as SumAttrs;
  if (x.dtype !== 'float32') return undefined;
  const axes = [...new Set(util.parseAxisParam(axis, x.shape))].sort((a, b) => a - b);
  if (axes.length === 0) return undefined;
  const first = axes[0]!;
  const last = axes[axes.length - 1]!;
  if (last - first + 1 !== axes.length || last === x.shape.length - 1) return undefined;

  const outer = util.sizeFromShape(x.shape.slice(0, first));
  const reduced = util.sizeFromShape(x.shape.slice(first, last + 1));
  const inner = util.sizeFromShape(x.shape.slice(last + 1));
  const [outShape] = backend_util.computeOutAndReduceShapes(x.shape, axes);
  const shape = keepDims ? backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
  const acc = new Float64Array(outer * inner);

  const out = backend.makeOutput(shape, 'float32');
  const xs = f32View(backend, x);
  for (let o = 0; o < outer; o++)
    accumulateRows(xs, o * reduced * inner, reduced, inner, acc, o * inner);
  if (op === 'Mean' && reduced > 0) {
    for (let i = 0; i < acc.length; i++) acc[i] /= reduced;
  }
  f32View(backend, out).set(acc);
  return out;
}

/**
 * acc[at + i] += Σ_r xs[from + r·inner + i]. Adding eight rows per pass over `acc` halves the
 * time against one row per pass (V8 does not vectorise; loads and stores of `acc` dominate).
 */
function accumulateRows(
  xs: Float32Array,
  from: number,
  rows: number,
  inner: number,
  acc: Float64Array,
  at: number,
): void {
  let base = from;
  let r = 0;
  for (; r + 8 <= rows; r += 8, base += 8 * inner) {
    for (let i = 0; i < inner; i++) {
      const k = base + i;
      acc[at + i] +=
        xs[k] +
        xs[k + inner] +
        (xs[k + 2 * inner] + xs[k + 3 * inner]) +
        (xs[k + 4 * inner] + xs[k + 5 * inner] + (xs[k + 6 * inner] + xs[k + 7 * inner]));
    }
  }
  for (; r < rows; r++, base += inner) {
    for (let i = 0; i < inner; i++) acc[at + i] += xs[base + i];
  }
}
