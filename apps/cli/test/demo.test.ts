import type { ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startLethe } from './cli-async';

const work = mkdtempSync(join(tmpdir(), 'lethe-demo-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Collects a started CLI's output until it exits; kills it after `timeoutMs`. */
function collect(child: ChildProcess, timeoutMs: number): Promise<Run> & { output: () => Run } {
  const run: Run = { status: null, stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (run.stdout += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (run.stderr += c));
  const done = new Promise<Run>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`lethe demo timed out\n${run.stdout}\n${run.stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ ...run, status });
    });
  });
  return Object.assign(done, { output: () => run });
}

/** The pids in the cluster table the demo prints. */
function clusterPids(stdout: string): number[] {
  return [...stdout.matchAll(/^(?:coordinator|worker-\d+)\s+(\d+)\s/gm)].map((m) => Number(m[1]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Processes whose command line names `text` (Linux: /proc); empty elsewhere. */
function processesMentioning(text: string): string[] {
  if (!existsSync('/proc')) return [];
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** The demo's closing TA and forgotten-class numbers are the receipt's, as its table prints them. */
function expectSummaryAgreesWithReceipt(out: string): void {
  const row = (name: string): string[] =>
    new RegExp(`^${name}\\s+(.*)$`, 'm').exec(out)![1]!.trim().split(/\s+/);
  const [before, after] = [row('before'), row('after')];
  // Columns after the label: UA, RA, TA, forgotten-class test acc, ...
  const summary =
    /TA \(kept classes\) ([\d.]+)% → ([\d.]+)%, "disc" test accuracy ([\d.]+)% → ([\d.]+)%/.exec(
      out,
    );
  expect(summary).not.toBeNull();
  expect(summary!.slice(1)).toEqual([before[2], after[2], before[3], after[3]]);
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

describe('lethe demo (distributed, embedded cluster from sources)', () => {
  it('trains on 2 workers, evaluates, forgets disc with a receipt, and stops every process', async () => {
    const dir = join(work, 'run', 'demo');
    const run = await collect(
      startLethe(['demo', '--dir', dir, '--per-class', '100', '--epochs', '2'], { cwd: work }),
      85_000,
    );
    expect(run.stderr).toMatch(/cluster ready: coordinator 127\.0\.0\.1:\d+, 2 workers alive/);
    expect(run.status, run.stderr).toBe(0);
    const out = run.stdout;
    expect(out).toContain(`demo directory ${dir} (replaced on each run)`);
    expect(out).toMatch(/^accuracy \d+\.\d\d% on 600 images \(manifest revision 1/m);
    expect(out).toMatch(/^disc\s+\d+\.\d%\s+100\s/m);
    expect(out).toMatch(/forgot class disc \(targeted, approximate\) — request demo-forget/);
    expect(out).toMatch(/\s+UA\s+RA\s+TA\s+forgotten-class test acc/);
    expect(out).toMatch(/^before\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+/m);
    expect(out).toMatch(/^after\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+0\.00\s/m);
    expect(out).toMatch(/retrained experts e\d(, e\d)* on their workers/);
    // The coordinator's own worker id (`w-…`), then the process from the cluster table.
    expect(out).toMatch(/^e\d\s+\S+ = worker-\d \(pid \d+\)\s+yes\s/m);
    expect(out).toMatch(
      /test accuracy after forgetting, every class: \d+\.\d\d% on 600 images: .*disc 0\.0%/,
    );
    expect(out).toMatch(
      /^UA {2}unlearning accuracy: .*\n^RA .*\n^TA {2}test accuracy on the classes kept/m,
    );
    expect(out).toMatch(/demo finished in [\d.]+ s on the wasm engine: /);
    expectSummaryAgreesWithReceipt(out);
    expect(run.stderr).toMatch(/demo cluster stopped\n$/);
    expect(run.stderr).not.toMatch(/unexpectedly|lethe: error/);

    const pids = clusterPids(out);
    expect(pids).toHaveLength(3);
    expect(pids.filter(alive)).toEqual([]);
    expect(processesMentioning(dir)).toEqual([]);
    expect(existsSync(join(dir, 'store', 'manifest.json'))).toBe(true);
    expect(existsSync(join(dir, 'logs', 'worker-2.log'))).toBe(true);
  }, 90_000);

  it('on Ctrl-C cancels the job, stops the cluster and exits 130', async () => {
    const dir = join(work, 'interrupted');
    const child = startLethe(['demo', '--dir', dir, '--per-class', '100', '--epochs', '50'], {
      cwd: work,
    });
    const run = collect(child, 60_000);
    const deadline = Date.now() + 50_000;
    while (!/^train epoch/m.test(run.output().stderr)) {
      if (Date.now() > deadline) throw new Error(`training did not start\n${run.output().stderr}`);
      await sleep(100);
    }
    child.kill('SIGINT');
    const result = await run;
    expect(result.status).toBe(130);
    expect(result.stderr).toMatch(
      /SIGINT: stopping the demo cluster…\n(.*\n)*demo cluster stopped\n/,
    );
    expect(result.stderr).toMatch(/\nlethe: error: interrupted: the demo cluster was stopped\n$/);
    expect(clusterPids(result.stdout).filter(alive)).toEqual([]);
    expect(processesMentioning(dir)).toEqual([]);
  }, 90_000);

  it('refuses to replace a directory it did not make', async () => {
    const dir = join(work, 'precious');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'notes.txt'), 'keep me');
    const run = await collect(startLethe(['demo', '--dir', dir], { cwd: work }), 60_000);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /^lethe: error: .*precious is not empty and was not made by lethe demo/m,
    );
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('keep me');
  }, 60_000);
});

describe('lethe demo --local', () => {
  it('trains, forgets and prints the receipt in-process, starting no other process', async () => {
    const dir = join(work, 'local');
    const run = await collect(
      startLethe(['demo', '--local', '--dir', dir, '--per-class', '40', '--epochs', '1'], {
        cwd: work,
      }),
      85_000,
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Lethe demo \(in-process\): 6 classes/m);
    expect(run.stdout).toMatch(/^accuracy \d+\.\d\d% on 600 images/m);
    expect(run.stdout).toMatch(/forgot class disc \(targeted, approximate\) — request demo-forget/);
    expect(run.stdout).toMatch(/^before .*\n^after /m);
    expect(run.stdout).toMatch(
      /trained in [\d.]+ s on the wasm \((no )?SIMD, \d+ threads?\) engine/,
    );
    expectSummaryAgreesWithReceipt(run.stdout);
    expect(run.stderr).not.toMatch(/coordinator|worker/);
    expect(existsSync(join(dir, 'store', 'manifest.json'))).toBe(true);
    expect(existsSync(join(dir, 'logs'))).toBe(false);
  }, 90_000);

  it('with --json prints only the receipt and its metrics on stdout, the text on stderr', async () => {
    const dir = join(work, 'local-json');
    const run = await collect(
      startLethe(
        ['demo', '--local', '--json', '--dir', dir, '--per-class', '40', '--epochs', '1'],
        { cwd: work },
      ),
      85_000,
    );
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as {
      mode: string;
      engine: string;
      requestId: string;
      className: string;
      expertsRetrained: number[];
      metrics: { before: Record<string, number>; after: Record<string, number> };
      receipt: {
        requestId: string;
        expertsRetrained: number[];
        metrics: { before: Record<string, number>; after: Record<string, number> };
      };
    };
    expect(result).toMatchObject({ mode: 'local', engine: 'wasm', requestId: 'demo-forget' });
    expect(result.className).toBe('disc');
    expect(result.receipt.requestId).toBe('demo-forget');
    expect(result.expertsRetrained).toEqual(result.receipt.expertsRetrained);
    for (const phase of ['before', 'after'] as const) {
      for (const key of ['ua', 'ra', 'ta', 'forgottenClassTestAccuracy', 'miaEfficacy']) {
        expect(result.metrics[phase][key], `${phase} ${key}`).toBe(
          result.receipt.metrics[phase][key],
        );
      }
    }
    // The human text is all there, on stderr.
    expect(run.stderr).toMatch(/^Lethe demo \(in-process\): 6 classes/m);
    expect(run.stderr).toMatch(/forgot class disc \(targeted, approximate\) — request demo-forget/);
    expect(run.stderr).toMatch(/^demo finished: /m);
  }, 90_000);
});
