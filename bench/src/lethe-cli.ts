import { spawn } from 'node:child_process';
import { join } from 'node:path';

// The benchmarks that measure what a user gets drive the built `lethe` command, as a user does.

const CLI = join(__dirname, '..', '..', 'apps', 'cli', 'dist', 'main.js');

/** Runs `lethe ARGS` (the built CLI); resolves with its stdout, rejects on a non-zero exit. */
export function lethe(args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolvePromise(out) : reject(new Error(`lethe ${args[0]} exited ${code}`)),
    );
  });
}

/** Runs queued tasks, at most `limit` at once; a running task may queue more. */
export class TaskQueue {
  private readonly waiting: (() => Promise<void>)[] = [];

  constructor(private readonly limit: number) {}

  add(task: () => Promise<void>): void {
    this.waiting.push(task);
  }

  async drain(): Promise<void> {
    const running = new Set<Promise<void>>();
    while (this.waiting.length > 0 || running.size > 0) {
      while (this.waiting.length > 0 && running.size < this.limit) {
        const p: Promise<void> = this.waiting.shift()!().finally(() => running.delete(p));
        running.add(p);
      }
      await Promise.race(running);
    }
  }
}
