import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  getKernel,
  registerKernel,
  unregisterKernel,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

export const WASM = 'wasm';

export interface WasmKernelArgs {
  inputs: NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: NamedAttrMap;
}

export type WasmKernelImpl = (args: WasmKernelArgs) => TensorInfo;

// A global symbol, not a module-level set, so that a second copy of this library in the same
// process (source under vitest, dist under node) still recognises kernels the first installed.
const OURS = Symbol.for('lethe.engine.kernel');

// The wasm backend's own implementations of kernels we replace, so a replacement can fall back
// to (or build on) the original without calling itself.
const builtins = new Map<string, KernelConfig>();

export function isOurKernel(kernelName: string): boolean {
  const config = getKernel(kernelName, WASM);
  return config !== undefined && OURS in config.kernelFunc;
}

/** Registers `impl` for `kernelName` on wasm, replacing (and remembering) any built-in one. */
export function installWasmKernel(kernelName: string, impl: WasmKernelImpl): void {
  if (isOurKernel(kernelName)) return;
  const builtin = getKernel(kernelName, WASM);
  if (builtin !== undefined) {
    builtins.set(kernelName, builtin);
    unregisterKernel(kernelName, WASM);
  }
  const kernelFunc: KernelFunc = ({ inputs, backend, attrs }) =>
    impl({ inputs, backend: backend as BackendWasm, attrs: attrs ?? {} });
  Object.defineProperty(kernelFunc, OURS, { value: true });
  registerKernel({
    kernelName,
    backendName: WASM,
    kernelFunc,
    // The built-in's setup binds its C++ entry point; keep it so the fallback keeps working
    // when the backend is (re)initialised after our registration.
    setupFunc: builtin?.setupFunc,
    disposeFunc: builtin?.disposeFunc,
  });
}

/** Runs the wasm backend's own implementation of a kernel (never one of our replacements). */
export function runBuiltin(
  kernelName: string,
  backend: BackendWasm,
  inputs: NamedTensorInfoMap,
  attrs: NamedAttrMap = {},
): TensorInfo {
  const config = builtins.get(kernelName) ?? getKernel(kernelName, WASM);
  if (
    config === undefined ||
    (builtins.get(kernelName) === undefined && OURS in config.kernelFunc)
  ) {
    throw new Error(`wasm backend has no built-in '${kernelName}' kernel`);
  }
  const out = config.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new Error(`kernel '${kernelName}' returned several outputs`);
  return out;
}

/** Frees intermediates made by `backend.makeOutput` or `runBuiltin` inside a kernel. */
export function release(backend: BackendWasm, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

// Views into the wasm heap are detached whenever the heap grows (any allocation), so callers
// must take them only after the last allocation they make.
export function f32View(backend: BackendWasm, info: TensorInfo): Float32Array {
  if (info.dtype !== 'float32') throw new Error(`expected a float32 tensor, got ${info.dtype}`);
  return backend.typedArrayFromHeap(info) as Float32Array;
}

export function numericView(backend: BackendWasm, info: TensorInfo): Float32Array | Int32Array {
  if (info.dtype !== 'float32' && info.dtype !== 'int32') {
    throw new Error(`expected a float32 or int32 tensor, got ${info.dtype}`);
  }
  return backend.typedArrayFromHeap(info) as Float32Array | Int32Array;
}

export function input(inputs: NamedTensorInfoMap, name: string): TensorInfo {
  const info = inputs[name];
  if (info === undefined) throw new Error(`missing kernel input '${name}'`);
  return info;
}

export function pair(value: number | [number, number]): [number, number] {
  return typeof value === 'number' ? [value, value] : value;
}
