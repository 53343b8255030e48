export {
  ENGINE_NAMES,
  type EngineAvailability,
  type EngineInfo,
  type EngineLog,
  type EngineName,
  type InitEngineOptions,
} from './engine-types';
export { describeEngines, engineInfo, initEngine } from './select-backend';
export { quietCpuBackend } from './quiet-cpu-backend';
export { registerTrainingGradients } from './gradients/register-gradients';
export {
  registerWasmTrainingKernels,
  type RegisterWasmKernelsOptions,
} from './kernels/register-wasm-kernels';
export { threadEntry } from './thread-entry';
