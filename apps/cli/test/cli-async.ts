import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CliRun } from './fixtures';

const CLI = resolve(__dirname, '..', 'src', 'main.ts');
/** tsx by absolute URL, so the CLI also starts from a working directory outside the repo. */
const TSX = pathToFileURL(require.resolve('tsx')).href;

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
}

/** Starts the CLI from its TypeScript sources without waiting (the test process keeps serving). */
export function startLethe(args: string[], options: CliOptions = {}): ChildProcess {
  const env = Object.fromEntries(
    Object.entries({ ...process.env, ...options.env }).filter(([, value]) => value !== undefined),
  );
  return spawn(process.execPath, ['--conditions=@lethe/source', '--import', TSX, CLI, ...args], {
    cwd: options.cwd ?? process.cwd(),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs the CLI to completion asynchronously, so an in-process gRPC server can answer it. */
export function letheAsync(args: string[], options: CliOptions = {}): Promise<CliRun> {
  const child = startLethe(args, options);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`lethe ${args.join(' ')} timed out\n${stderr}`));
    }, 60_000);
    child.once('error', fail);
    child.once('close', (status) => {
      clearTimeout(timer);
      done({ status, stdout, stderr });
    });
  });
}
