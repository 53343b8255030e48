import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

/** Coordinator tests with real worker processes start them from sources, as `lethe up` does. */

export const REPO = resolve(__dirname, '..', '..', '..', '..');

/** A worker process from sources (wasm engine) registering with the coordinator at `port`. */
export function startWorker(options: {
  name: string;
  port: number;
  storeDir: string;
}): ChildProcess {
  return spawn(
    process.execPath,
    [
      '--conditions=@lethe/source',
      '--import',
      'tsx',
      'apps/worker/src/main.ts',
      '--coordinator',
      `127.0.0.1:${options.port}`,
      '--store',
      options.storeDir,
      '--name',
      options.name,
      '--port',
      '0',
    ],
    { cwd: REPO, env: { ...process.env, LETHE_ENGINE: 'wasm' }, stdio: 'ignore' },
  );
}
