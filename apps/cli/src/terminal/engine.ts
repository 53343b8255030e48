import { type EngineInfo, initEngine } from '@lethe/engine';

let verbose = false;

/** `lethe -v`: the engine line carries why that engine was chosen (and gradient registrations). */
export function setVerbose(on: boolean): void {
  verbose = on;
}

/** What running on WebAssembly means for speed, said once where it matters. */
export const WASM_NOTE =
  'note: WebAssembly runs single-threaded under Node.js; where @tensorflow/tfjs-node installs (it downloads libtensorflow), Lethe uses it and trains faster';

/** `wasm (SIMD, 1 thread)`, `node`, `gpu`: the engine and what limits its speed. */
export function engineSummary(info: Pick<EngineInfo, 'engine' | 'simd' | 'threads'>): string {
  if (info.engine !== 'wasm') return info.engine;
  const threads = info.threads ?? 1;
  return `wasm (${info.simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'})`;
}

/**
 * Starts the engine and says which one on one short stderr line (services log JSON instead);
 * with -v the line also says why. Call it only once the input has been checked, so that a
 * command failing on its flags or data says nothing about engines.
 */
export async function startEngine(): Promise<EngineInfo> {
  const info = await initEngine({ log: () => undefined });
  process.stderr.write(`engine: ${engineSummary(info)}${verbose ? ` — ${info.reason}` : ''}\n`);
  return info;
}
