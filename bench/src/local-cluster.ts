import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The built `lethe` command the cluster benchmarks start. */
export const CLI = join(__dirname, '..', '..', 'apps', 'cli', 'dist', 'main.js');

/** A `lethe up` cluster on this machine: its coordinator's address, and how to stop it. */
export interface LocalCluster {
  coordinator: string;
  stop(): Promise<void>;
}

/**
 * `lethe up --workers N` with its store under `dir`, once it has written `.lethe/cluster.json`
 * (coordinator listening, workers registered).
 */
export async function startLocalCluster(dir: string, workers: string): Promise<LocalCluster> {
  const up: ChildProcess = spawn(
    process.execPath,
    [CLI, 'up', '--workers', workers, '--port', '0', '--store', join(dir, 'store')],
    { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const stop = async (): Promise<void> => {
    if (up.exitCode !== null) return;
    up.kill('SIGTERM');
    await new Promise((r) => up.once('exit', r));
  };
  const file = join(dir, '.lethe', 'cluster.json');
  const deadline = Date.now() + 120_000;
  while (!existsSync(file)) {
    if (Date.now() > deadline || up.exitCode !== null) {
      await stop();
      throw new Error('lethe up did not start');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const { coordinator } = JSON.parse(readFileSync(file, 'utf8')) as { coordinator: string };
  return { coordinator, stop };
}
