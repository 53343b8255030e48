import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';

export const REPO = resolve(__dirname, '..', '..', '..');

/** A service process of the cluster, with its structured log lines kept for assertions. */
export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  /** Every JSON log line so far. */
  lines: Record<string, unknown>[];
  /** Resolves with the first log line whose msg is `msg` (and that `match` accepts). */
  waitFor(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Runs an app from its TypeScript sources (`apps/<app>/src/main.ts`), as a separate process,
 * exactly as `lethe up` does on a machine without a build.
 */
export function startService(
  name: string,
  app: 'coordinator' | 'worker',
  args: string[],
  env: Record<string, string> = {},
): ServiceProcess {
  const child = spawn(
    process.execPath,
    ['--conditions=@lethe/source', '--import', 'tsx', `apps/${app}/src/main.ts`, ...args],
    {
      cwd: REPO,
      env: { ...process.env, LETHE_ENGINE: 'wasm', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // E2E_LOG_DIR keeps every process's log for a look after a failure.
  const logDir = process.env['E2E_LOG_DIR'];
  if (logDir) mkdirSync(logDir, { recursive: true });
  child.stderr!.on('data', (chunk: Buffer) => {
    if (logDir) appendFileSync(`${logDir}/${name}.log`, chunk);
  });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    if (logDir) appendFileSync(`${logDir}/${name}.log`, `${text}\n`);
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    lines.push(line);
    for (const w of [...waiters]) {
      if (line['msg'] === w.msg) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  return {
    name,
    child,
    lines,
    exited,
    waitFor(msg, timeoutMs = 60_000) {
      const seen = lines.find((l) => l['msg'] === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name}: no "${msg}" log line in ${timeoutMs} ms\n${stderr}`)),
          timeoutMs,
        );
        waiters.push({
          msg,
          resolve: (line) => {
            clearTimeout(timer);
            resolveLine(line);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited with ${code} before "${msg}"\n${stderr}`));
        });
      });
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
