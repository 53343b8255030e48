import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lethe, writeCifar10 } from './fixtures';

const work = mkdtempSync(join(tmpdir(), 'lethe-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What `lethe eval --json` prints that these tests read. */
interface Evaluated {
  accuracy: number;
  routing: number[][];
  routingHealth: { rule: string; plannedExperts: number[][] };
}

describe('lethe train / eval', () => {
  const data = writeCifar10(work, 40, 10);
  const store = join(work, 'store');

  it('trains a tiny MoE on CIFAR-10-layout data, stores it, and eval agrees with training', () => {
    const train = lethe([
      'train',
      '--data',
      `cifar10:${data}`,
      '--store',
      store,
      '--preset',
      'tiny',
      '--experts',
      '3',
      '--top-k',
      '2',
      '--epochs',
      '2',
      '--batch',
      '16',
      '--lr',
      '0.01',
      '--json',
    ]);
    expect(train.status).toBe(0);
    // One short engine line; -v adds why that engine was chosen.
    expect(train.stderr.match(/^engine: .*$/gm)).toEqual([
      expect.stringMatching(/^engine: wasm \((no )?SIMD, \d+ threads?\)$/),
    ]);
    const result = JSON.parse(train.stdout) as {
      trainSize: number;
      history: unknown[];
      test: { accuracy: number; count: number; routing: number[][] };
      classes: string[];
    };
    expect(result.trainSize).toBe(160);
    expect(result.history).toHaveLength(2);
    expect(result.classes).toEqual(['square', 'disc', 'cross', 'h-stripes']);
    expect(result.test.count).toBe(40);
    expect(readdirSync(store)).toContain('manifest.json');

    const evaluation = lethe(['eval', '--data', `cifar10:${data}`, '--store', store, '--json']);
    expect(evaluation.status).toBe(0);
    const ev = JSON.parse(evaluation.stdout) as Evaluated;
    expect(ev.accuracy).toBe(result.test.accuracy);
    expect(ev.routing).toEqual(result.test.routing);
    expect(ev.routingHealth.rule).toBe('coverage:0.99');

    // Collateral as a forget with another selection rule would see it.
    const top1 = lethe([
      'eval',
      '--data',
      `cifar10:${data}`,
      '--store',
      store,
      '--json',
      '--select',
      'top:1',
    ]);
    expect(top1.status).toBe(0);
    const health = (JSON.parse(top1.stdout) as Evaluated).routingHealth;
    expect(health.rule).toBe('top:1');
    expect(health.plannedExperts.every((planned) => planned.length <= 1)).toBe(true);

    const table = lethe(['eval', '--data', `cifar10:${data}`, '--store', store, '-v']);
    expect(table.stderr).toMatch(/^engine: wasm \(.*\) — automatic: /m);
    expect(table.stdout).toMatch(/accuracy \d+\.\d\d% on 40 images/);
    expect(table.stdout).toMatch(/square\s+\d+\.\d%\s+10/);
  });

  it('forgets a class with a receipt, refuses to forget it twice, and lists receipts', () => {
    const forget = lethe([
      'forget',
      '--data',
      `cifar10:${data}`,
      '--store',
      store,
      '--class',
      'cross',
      '--epochs',
      '2',
      '--lr',
      '0.003',
      '--batch',
      '16',
      '--request-id',
      'cli-1',
      '--json',
    ]);
    expect(forget.stderr).toMatch(/plan: class cross activates experts/);
    expect(forget.status).toBe(0);
    const receipt = JSON.parse(forget.stdout) as {
      requestId: string;
      partsChanged: string[];
      request: { classIndex: number };
    };
    expect(receipt.requestId).toBe('cli-1');
    expect(receipt.request.classIndex).toBe(2);
    expect(receipt.partsChanged).toContain('router');

    const again = lethe([
      'forget',
      '--data',
      `cifar10:${data}`,
      '--store',
      store,
      '--class',
      'cross',
    ]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(
      /\nlethe: error: class cross was already forgotten \(request cli-1/,
    );

    const list = lethe(['receipts', '--store', store]);
    expect(list.status).toBe(0);
    expect(list.stdout).toMatch(/cli-1 .* class cross +targeted/);
    const shown = lethe(['receipts', '--store', store, '--request-id', 'cli-1']);
    expect(shown.stdout).toMatch(/forgot class cross \(targeted, approximate\)/);
    expect(shown.stdout).toMatch(/before .*\n.*after/);
  });

  it.each([
    [['train', '--data', 'nope:/x'], /unknown dataset spec "nope:\/x"/],
    [['train', '--data', `cifar10:${join(work, 'missing')}`], /missing/],
    [
      ['train', '--data', 'cifar10:/x', '--experts', '2', '--top-k', '3'],
      /--top-k \(3\) cannot exceed --experts \(2\)/,
    ],
    [['train', '--data', 'cifar10:/x', '--epochs', '0'], /--epochs.*positive integer/],
    [['train', '--data', 'cifar10:/x', '--preset', 'huge'], /unknown --preset huge/],
    [['eval', '--data', `cifar10:${data}`, '--store', join(work, 'empty')], /no trained model/],
    [['eval', '--data', 'cifar10:/x', '--store', join(work, 'empty')], /\/x: missing directory/],
    [
      ['eval', '--data', 'cifar10:/x', '--select', 'coverage:2'],
      /invalid expert selection "coverage:2"/,
    ],
    [['train', '--data', 'cifar10:/x', '--nope'], /unknown option '--nope'.* \(see --help\)$/],
    [['train'], /required option '--data <spec>' not specified/],
    [['verify', '--store', join(work, 'empty')], /required option '--request-id <id>'/],
    [
      ['forget', '--data', 'cifar10:/x', '--class', '1', '--method', 'mask', '--mask-output'],
      /--mask-output is what --method mask does/,
    ],
    [
      ['forget', '--data', 'cifar10:/x', '--class', '1', '--method', 'erase'],
      /--method.*expected one of targeted/,
    ],
    [
      ['receipts', '--store', join(work, 'empty'), '--request-id', 'nope'],
      /no receipt for request nope/,
    ],
  ])('rejects bad input with one clear line and a non-zero exit: %j', (args, message) => {
    const run = lethe(args);
    expect(run.status).not.toBe(0);
    const last = run.stderr.trimEnd().split('\n').at(-1);
    expect(last).toMatch(/^lethe: error: /);
    expect(last).toMatch(message);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(run.stderr).not.toMatch(/^engine:/m); // failed before any engine was started
  });

  it('forcing an engine that is not installed fails clearly', () => {
    const run = lethe(['info'], { LETHE_ENGINE: 'gpu' });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/tfjs-node-gpu/);
  });

  it('info names the engine in use and the presets, as text or JSON', () => {
    const run = lethe(['info']);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/engine: wasm/);
    expect(run.stdout).toMatch(/small/);
    const json = lethe(['info', '--json']);
    expect(json.status).toBe(0);
    const info = JSON.parse(json.stdout) as {
      engine: { engine: string; reason: string };
      presets: { name: string }[];
    };
    expect(info.engine.engine).toBe('wasm');
    expect(info.presets.map((p) => p.name)).toContain('small');
  });
});
