import { backend as currentBackend, env, setBackend, version_core } from '@tensorflow/tfjs-core';
import {
  ENGINE_NAMES,
  ENGINE_PACKAGES,
  isEngineName,
  type EngineAvailability,
  type EngineInfo,
  type EngineLog,
  type EngineName,
  type InitEngineOptions,
} from './engine-types';
import { registerTrainingGradients } from './gradients/register-gradients';
import { quietCpuBackend } from './quiet-cpu-backend';
import { registerWasmTrainingKernels } from './kernels/register-wasm-kernels';
import { installedVersion, loadOptional } from './optional-package';

const AUTO_ORDER: readonly EngineName[] = ['gpu', 'node', 'wasm'];

const NOT_INSTALLED_HINT: Readonly<Record<EngineName, string>> = {
  gpu: 'its install downloads libtensorflow with CUDA',
  node: 'its install downloads libtensorflow',
  wasm: 'it is a dependency of @lethe/engine: reinstall',
  cpu: 'it is a dependency of @lethe/engine: reinstall',
};

interface EngineState {
  pending?: Promise<EngineInfo>;
  info?: EngineInfo;
}

// On globalThis, like tfjs-core's own engine, so that two copies of this library in one process
// (sources under a test runner, dist elsewhere) still pick, register and log only once.
const STATE_KEY = Symbol.for('lethe.engine.state');
const state: EngineState = ((globalThis as Record<symbol, EngineState | undefined>)[STATE_KEY] ??=
  {});

/**
 * Chooses and initialises the TensorFlow.js backend for this process, registers the gradients
 * and kernels training needs, and logs the choice once. Order: tfjs-node-gpu, tfjs-node, wasm;
 * the pure-JavaScript cpu backend only when asked for. `options.engine` or LETHE_ENGINE forces
 * one engine and fails if it is unavailable. Later calls return the same info, and fail if they
 * force a different engine.
 */
export async function initEngine(options: InitEngineOptions = {}): Promise<EngineInfo> {
  const forced = requestedEngine(options);
  if (state.pending === undefined) {
    const pending = selectEngine(forced, options.log ?? logToStderr);
    state.pending = pending;
    try {
      state.info = await pending;
    } catch (error) {
      // A failed attempt (say, a forced engine that is missing) must not pin the process.
      state.pending = undefined;
      throw error;
    }
  }
  const info = await state.pending;
  if (forced !== undefined && forced.engine !== info.engine) {
    throw new Error(
      `${forced.source}: the engine is already initialised as '${info.engine}' in this process ` +
        `and cannot be switched to '${forced.engine}'`,
    );
  }
  return info;
}

/** The engine chosen by initEngine, once it has finished. */
export function engineInfo(): EngineInfo | undefined {
  return state.info;
}

/** Which engines this installation could use, without loading any of them (for `lethe info`). */
export function describeEngines(): EngineAvailability[] {
  return ENGINE_NAMES.map((engine) => {
    const pkg = ENGINE_PACKAGES[engine];
    const version = installedVersion(pkg);
    const installed = version !== undefined;
    const note =
      engine === 'cpu'
        ? 'pure JavaScript, ~100x slower for convolutions: only when forced (LETHE_ENGINE=cpu)'
        : installed
          ? engine === 'wasm'
            ? 'WebAssembly with XNNPACK; the default when tfjs-node is unavailable'
            : 'native libtensorflow'
          : `not installed (${NOT_INSTALLED_HINT[engine]})`;
    return {
      engine,
      package: pkg,
      installed,
      ...(version !== undefined ? { version } : {}),
      selected: state.info?.engine === engine,
      note,
    };
  });
}

interface ForcedEngine {
  engine: EngineName;
  /** How it was asked for, to start error messages with: "LETHE_ENGINE=node". */
  source: string;
}

function requestedEngine(options: InitEngineOptions): ForcedEngine | undefined {
  if (options.engine !== undefined) {
    const engine: string = options.engine;
    if (!isEngineName(engine)) throw invalidEngine(`initEngine({ engine: '${engine}' })`);
    return { engine, source: `initEngine({ engine: '${engine}' })` };
  }
  const fromEnv = process.env['LETHE_ENGINE']?.trim();
  if (fromEnv === undefined || fromEnv === '') return undefined;
  if (!isEngineName(fromEnv)) throw invalidEngine(`LETHE_ENGINE=${fromEnv}`);
  return { engine: fromEnv, source: `LETHE_ENGINE=${fromEnv}` };
}

function invalidEngine(source: string): Error {
  return new Error(
    `${source} is not a valid engine; use one of ${ENGINE_NAMES.join(', ')} ` +
      '(or leave LETHE_ENGINE unset to choose automatically)',
  );
}

type Attempt =
  { ok: true; info: Omit<EngineInfo, 'reason'>; note?: string } | { ok: false; why: string };

async function selectEngine(forced: ForcedEngine | undefined, log: EngineLog): Promise<EngineInfo> {
  let chosen: Omit<EngineInfo, 'reason'> | undefined;
  let reason: string;
  if (forced !== undefined) {
    const attempt = await activate(forced.engine);
    if (!attempt.ok) {
      throw new Error(
        `${forced.source}: ${attempt.why} — install it, or unset LETHE_ENGINE to choose ` +
          `automatically (${AUTO_ORDER.join(' → ')})`,
      );
    }
    chosen = attempt.info;
    reason = `forced by ${forced.source}${attempt.note ? `; ${attempt.note}` : ''}`;
  } else {
    const skipped: string[] = [];
    for (const engine of AUTO_ORDER) {
      const attempt = await activate(engine);
      if (attempt.ok) {
        chosen = attempt.info;
        skipped.push(`using ${engine}${attempt.note ? ` (${attempt.note})` : ''}`);
        break;
      }
      skipped.push(attempt.why);
    }
    if (chosen === undefined) {
      throw new Error(
        `no usable TensorFlow.js engine: ${skipped.join('; ')}. LETHE_ENGINE=cpu runs the ` +
          'pure-JavaScript backend (~100x slower for convolution training)',
      );
    }
    reason = `automatic: ${skipped.join('; ')}`;
  }
  const gradients = registerTrainingGradients();
  const info: EngineInfo = { ...chosen, reason: `${reason}; ${gradients}` };
  log('engine selected', { ...info });
  return info;
}

async function activate(engine: EngineName): Promise<Attempt> {
  const pkg = ENGINE_PACKAGES[engine];
  const loaded = loadOptional(pkg);
  if (!loaded.ok) {
    const why = loaded.missing
      ? `${pkg} is not installed (${NOT_INSTALLED_HINT[engine]})`
      : `${pkg} failed to load: ${loaded.message}`;
    return { ok: false, why };
  }
  const backendName = engine === 'gpu' || engine === 'node' ? 'tensorflow' : engine;
  if (engine === 'wasm') registerWasmTrainingKernels();
  if (!(await setBackend(backendName))) {
    return {
      ok: false,
      why: `${pkg} is installed but its '${backendName}' backend failed to start`,
    };
  }
  const versions: Record<string, string> = { 'tfjs-core': version_core };
  versions[pkg.replace('@tensorflow/', '')] = installedVersion(pkg) ?? 'unknown';
  const info: Omit<EngineInfo, 'reason'> = { engine, backend: backendName, versions };
  let note: string | undefined;
  if (engine === 'wasm') {
    info.simd = (await env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
    const getThreadsCount = (loaded.module as { getThreadsCount?: () => number }).getThreadsCount;
    info.threads = getThreadsCount?.() ?? 1;
    note = `${info.simd ? 'SIMD' : 'no SIMD'}, ${info.threads} thread${info.threads === 1 ? '' : 's'}`;
  } else if (engine === 'gpu') {
    const usingGpu = (currentBackend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice;
    if (usingGpu === false) note = 'no CUDA device visible: libtensorflow runs on the CPU';
  } else if (engine === 'cpu') {
    quietCpuBackend();
    note = 'pure JavaScript: ~100x slower for convolution training';
  }
  return note === undefined ? { ok: true, info } : { ok: true, info, note };
}

function logToStderr(message: string, fields: Record<string, unknown>): void {
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: message, ...fields })}\n`,
  );
}
