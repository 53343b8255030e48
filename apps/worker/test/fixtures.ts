import { type ChildProcess, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { resolve } from 'node:path';
import { makeSyntheticDataset, writeCifar10 } from '@lethe/data';
import pino from 'pino';
import type { WorkerConfig } from '../src/config';

export const MAIN = resolve(__dirname, '..', 'src', 'main.ts');

/** A logger that writes nothing (set LETHE_TEST_LOGS=1 to see the worker's lines). */
export const quietLogger = (): pino.Logger =>
  pino({ level: process.env['LETHE_TEST_LOGS'] ? 'debug' : 'silent' });

export function workerConfig(overrides: Partial<WorkerConfig> = {}): WorkerConfig {
  return {
    host: '127.0.0.1',
    port: 0,
    metricsPort: 0,
    maxExperts: 3,
    graceMs: 2_000,
    ...overrides,
  };
}

/** A generated 4-class "shapes" dataset in the CIFAR-10 binary layout; returns its directory. */
export function writeShapes(dir: string, perClassTrain: number, perClassTest: number): string {
  const split = (perClass: number, name: 'train' | 'test') =>
    makeSyntheticDataset({ perClass, split: name, seed: 5, classes: 4 });
  return writeCifar10(dir, {
    train: split(perClassTrain, 'train'),
    test: split(perClassTest, 'test'),
  });
}

export interface SpawnedWorker {
  child: ChildProcess;
  /** What the worker wrote to descriptor 3 (given to it as LETHE_READY_FD=3). */
  ready: () => string;
  /** Every stdout line parsed as JSON so far. */
  lines: Record<string, unknown>[];
  stderr: () => string;
  /** Resolves with the first log line whose msg is `msg`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** Runs the worker from its TypeScript sources as a child process. */
export function spawnWorker(args: string[], env: Record<string, string> = {}): SpawnedWorker {
  const child = spawn(
    process.execPath,
    ['--conditions=@lethe/source', '--import', 'tsx', MAIN, ...args],
    {
      env: { ...process.env, LETHE_ENGINE: 'wasm', LETHE_READY_FD: '3', ...env },
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    },
  );
  let ready = '';
  (child.stdio[3] as Readable).setEncoding('utf8').on('data', (chunk: string) => (ready += chunk));
  const lines: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { msg: '<not json>', text };
      }
      lines.push(line);
      for (const w of waiters.filter((w) => w.msg === line['msg'])) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => stderr,
    ready: () => ready,
    exited,
    waitForLog(msg, timeoutMs = 60_000) {
      const seen = lines.find((l) => l['msg'] === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no '${msg}' log line within ${timeoutMs} ms; stderr: ${stderr}`)),
          timeoutMs,
        );
        waiters.push({
          msg,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        void exited.then(() =>
          reject(new Error(`worker exited before '${msg}'; stderr: ${stderr}`)),
        );
      });
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true, or fails after `timeoutMs`. */
export async function eventually(
  check: () => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
