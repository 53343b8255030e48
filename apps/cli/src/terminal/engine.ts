import { type EngineInfo, initEngine } from '@lethe/engine';

/** Starts the engine, saying on one stderr line which one and why (services log JSON instead). */
export function startEngine(): Promise<EngineInfo> {
  return initEngine({
    log: (_message, fields) =>
      process.stderr.write(`engine: ${String(fields['engine'])} — ${String(fields['reason'])}\n`),
  });
}
