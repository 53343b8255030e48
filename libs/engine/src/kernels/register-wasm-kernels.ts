import {
  BatchMatMul,
  Cast,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  DepthwiseConv2dNativeBackpropFilter,
  DepthwiseConv2dNativeBackpropInput,
  GatherV2,
  Identity,
  MaxPoolGrad,
  Mean,
  Sum,
  UnsortedSegmentSum,
} from '@tensorflow/tfjs-core';
import { batchMatMul } from './batch-mat-mul';
import { conv2dBackpropFilter } from './conv2d-backprop-filter';
import { conv2dBackpropInput } from './conv2d-backprop-input';
import {
  depthwiseConv2dNativeBackpropFilter,
  depthwiseConv2dNativeBackpropInput,
} from './depthwise-conv2d-backprop';
import { gatherRows } from './gather-rows';
import { cast, identity } from './identity-and-cast';
import { maxPoolGrad } from './max-pool-grad';
import { mean, sum } from './reduce-sum-mean';
import { unsortedSegmentSum } from './unsorted-segment-sum';
import { installWasmKernel, type WasmKernelImpl } from './wasm-kernel';

/** Kernels tfjs-backend-wasm 4.22 does not have, which CNN training needs. */
export const MISSING_WASM_KERNELS: Readonly<Record<string, WasmKernelImpl>> = {
  [Conv2DBackpropFilter]: conv2dBackpropFilter,
  [DepthwiseConv2dNativeBackpropFilter]: depthwiseConv2dNativeBackpropFilter,
  [DepthwiseConv2dNativeBackpropInput]: depthwiseConv2dNativeBackpropInput,
  [UnsortedSegmentSum]: unsortedSegmentSum,
};

/** Built-in wasm kernels replaced because they dominated a training step's profile. */
export const FASTER_WASM_KERNELS: Readonly<Record<string, WasmKernelImpl>> = {
  [Conv2DBackpropInput]: conv2dBackpropInput,
  [MaxPoolGrad]: maxPoolGrad,
  [Sum]: sum,
  [Mean]: mean,
  [Identity]: identity,
  [Cast]: cast,
  [BatchMatMul]: batchMatMul,
  [GatherV2]: gatherRows,
};

export interface RegisterWasmKernelsOptions {
  /** Also replace the built-in kernels listed in FASTER_WASM_KERNELS (default true). */
  replaceBuiltins?: boolean;
}

/**
 * Registers on the 'wasm' backend the kernels it lacks for training and, unless told not to,
 * faster versions of some it has. Idempotent; safe before or after the backend is initialised.
 * Registration is global: every copy of @tensorflow/tfjs-core in the process shares one kernel
 * registry. Returns the kernel names now served by this library.
 */
export function registerWasmTrainingKernels(options: RegisterWasmKernelsOptions = {}): string[] {
  const kernels = {
    ...MISSING_WASM_KERNELS,
    ...(options.replaceBuiltins === false ? {} : FASTER_WASM_KERNELS),
  };
  for (const [name, impl] of Object.entries(kernels)) installWasmKernel(name, impl);
  return Object.keys(kernels);
}
