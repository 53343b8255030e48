export const ENGINE_NAMES = ['gpu', 'node', 'wasm', 'cpu'] as const;

export type EngineName = (typeof ENGINE_NAMES)[number];

export interface EngineInfo {
  engine: EngineName;
  /** The TensorFlow.js backend name: 'tensorflow' (gpu and node), 'wasm' or 'cpu'. */
  backend: string;
  /** Why this engine: what was asked for and what was unavailable. */
  reason: string;
  /** Package name (without the @tensorflow/ scope) → installed version. */
  versions: Record<string, string>;
  /** wasm only: whether the SIMD binary is in use. */
  simd?: boolean;
  /** wasm only: worker threads (tfjs-backend-wasm runs single-threaded under Node). */
  threads?: number;
}

export type EngineLog = (message: string, fields: Record<string, unknown>) => void;

export interface InitEngineOptions {
  /** Force an engine; overrides LETHE_ENGINE. Fails if it is unavailable. */
  engine?: EngineName;
  /** Receives the one line saying which engine was chosen (default: JSON on stderr). */
  log?: EngineLog;
}

export interface EngineAvailability {
  engine: EngineName;
  package: string;
  /** The package resolves from here (for gpu/node this does not prove libtensorflow loads). */
  installed: boolean;
  version?: string;
  /** This is the engine initEngine chose in this process. */
  selected: boolean;
  note: string;
}

export const ENGINE_PACKAGES: Readonly<Record<EngineName, string>> = {
  gpu: '@tensorflow/tfjs-node-gpu',
  node: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};

export function isEngineName(value: string): value is EngineName {
  return (ENGINE_NAMES as readonly string[]).includes(value);
}
