import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MetricsError,
  type ReportErasure,
  type ReportForget,
  type ReportInput,
  routingHealth as routingHealthOf,
  writeReport,
} from '../src';

const work = mkdtempSync(join(tmpdir(), 'lethe-report-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const classes = ['airplane', 'automobile', 'bird <b>'];

const forget: ReportForget = {
  requestId: 'forget-bird-1',
  createdAt: '2026-01-02T03:04:05.000Z',
  classIndex: 2,
  className: 'bird <b>',
  method: 'targeted',
  mode: 'approximate',
  loss: 'complement-ce',
  expertsRetrained: [1],
  partsChanged: ['expert/1', 'router'],
  weights: {
    before: { router: 'a'.repeat(64), 'expert/0': 'b'.repeat(64), 'expert/1': 'c'.repeat(64) },
    after: { router: 'd'.repeat(64), 'expert/0': 'b'.repeat(64), 'expert/1': 'e'.repeat(64) },
  },
  metrics: {
    before: {
      ua: 12.5,
      ra: 90.25,
      ta: 88.75,
      forgottenClassTestAccuracy: 81.5,
      miaEfficacy: 22.125,
      featureProbe: 97,
      perClassTest: [90, 87.5, 81.5],
      routingTest: [
        [10, 10],
        [15, 5],
        [2, 18],
      ],
    },
    after: {
      ua: 99.5,
      ra: 89.75,
      ta: 87.25,
      forgottenClassTestAccuracy: 0.5,
      miaEfficacy: 100,
      featureProbe: 91,
      perClassTest: [89, 85.5, 0.5],
      routingTest: [
        [11, 9],
        [16, 4],
        [12, 8],
      ],
    },
  },
  timings: { planSeconds: 0.25, forgetSeconds: 12.5, measureSeconds: 3.25, totalSeconds: 16 },
  history: [
    { epoch: 1, loss: 0.8, accuracy: 70, seconds: 4 },
    { epoch: 2, loss: 0.5, accuracy: 75, seconds: 4 },
  ],
  engine: 'wasm',
};

const input: ReportInput = {
  title: 'Test report',
  source: 'local-dir:/somewhere',
  generatedAt: '2026-01-02T04:00:00.000Z',
  model: { preset: 'tiny', experts: 2, topK: 1, classes, engine: 'wasm', forgotten: ['bird <b>'] },
  training: {
    dataset: 'cifar10:/data',
    epochs: 3,
    testAccuracy: 84.5,
    history: [1, 2, 3].map((epoch) => ({
      epoch,
      loss: 2 / epoch,
      accuracy: 30 * epoch,
      seconds: 1,
    })),
  },
  forgets: [forget],
};

function expectPng(path: string): void {
  const bytes = readFileSync(path);
  expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE), `${path} is a PNG`).toBe(true);
  // A chart with axes, labels and marks; an empty or text-less render is far smaller.
  expect(bytes.length).toBeGreaterThan(10_000);
}

function imageLinks(html: string): string[] {
  return [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]!);
}

describe('writeReport', () => {
  it('writes report.html and a PNG per chart, linked relatively from the page', async () => {
    const out = join(work, 'full');
    const written = await writeReport(input, out);

    expect(written.html).toBe(join(out, 'report.html'));
    expect(written.charts.map((c) => c.slice(out.length + 1))).toEqual([
      'training-curve.png',
      'forget-forget-bird-1-per-class.png',
      'forget-forget-bird-1-routing.png',
      'forget-forget-bird-1-unlearning-curve.png',
    ]);
    written.charts.forEach(expectPng);
    for (const chart of written.charts)
      expect(existsSync(chart.replace(/\.png$/, '.svg'))).toBe(true);

    const html = readFileSync(written.html, 'utf8');
    expect(imageLinks(html)).toEqual(written.charts.map((c) => c.slice(out.length + 1)));
    for (const link of imageLinks(html)) expect(existsSync(join(out, link))).toBe(true);
    expect(html).toContain('forget-bird-1');
    // UA, RA, TA, forgotten-class test accuracy, MIA-Efficacy, feature probe.
    const metricRow = (phase: string): string[] =>
      [
        ...(html.match(new RegExp(`<th>${phase}</th>(.*?)</tr>`))?.[1] ?? '').matchAll(
          /<td class="num">([^<]*)<\/td>/g,
        ),
      ].map((m) => m[1]!);
    expect(metricRow('before')).toEqual(['12.50', '90.25', '88.75', '81.50', '22.13', '97.00']);
    expect(metricRow('after')).toEqual(['99.50', '89.75', '87.25', '0.50', '100.00', '91.00']);
    expect(html).toContain('e1'); // experts retrained
    expect(html).toContain('expert/1, router');
    expect(html).toContain(`<code>${'c'.repeat(12)}</code></td><td><code>${'e'.repeat(12)}`);
    expect(html).toContain('total 16.0 s');
    expect(html).toMatch(/preset<\/th><td>tiny/);
    expect(html).toMatch(/top-k<\/th><td>1/);
    expect(html).toContain('bird &lt;b&gt;');
    expect(html).not.toContain('<b>');
    // Written through temp files that are renamed away.
    expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('reports a model with only training and no forget requests', async () => {
    const out = join(work, 'training-only');
    const written = await writeReport({ ...input, forgets: [] }, out);
    expect(written.charts).toEqual([join(out, 'training-curve.png')]);
    expectPng(written.charts[0]!);
    const html = readFileSync(written.html, 'utf8');
    expect(imageLinks(html)).toEqual(['training-curve.png']);
    expect(html).toContain('No forget requests yet.');
  });

  it('shows routing health: expert load, dead experts, and per class what a forget disturbs', async () => {
    const out = join(work, 'routing-health');
    const slots = classes.map((_, c) => [c === 0 ? 90 : 50, c === 0 ? 10 : 50]);
    const routingHealth = routingHealthOf(slots, 1);
    const written = await writeReport(
      { ...input, forgets: [], training: { ...input.training!, routingHealth } },
      out,
    );
    const html = readFileSync(written.html, 'utf8');
    expect(html).toContain('<h2>Routing health</h2>');
    expect(html).toContain(`Mean collateral ${routingHealth.meanCollateral.toFixed(2)} %`);
    expect(html).not.toContain('Dead experts');
  });

  it('reports a forget without a training history or retraining epochs', async () => {
    const out = join(work, 'no-history');
    const { training: _training, ...rest } = input;
    const written = await writeReport(
      { ...rest, forgets: [{ ...forget, method: 'mask', history: [] }] },
      out,
    );
    expect(written.charts.map((c) => c.slice(out.length + 1))).toEqual([
      'forget-forget-bird-1-per-class.png',
      'forget-forget-bird-1-routing.png',
    ]);
    const html = readFileSync(written.html, 'utf8');
    expect(html).toContain('No training history');
    expect(html).toContain('does not retrain');
  });

  it('lists sample and subject erasures in one table: approximate with evidence, exact without', async () => {
    const out = join(work, 'erasures');
    const erasures: ReportErasure[] = [
      {
        requestId: 'erase-4711',
        createdAt: '2026-01-03T00:00:00.000Z',
        mode: 'approximate',
        method: 'neggrad+',
        samples: 12,
        subjects: ['4711 <i>'],
        retrained: 'e0, e1 + router',
        metrics: {
          before: { ua: 12.5, ra: 90.25, ta: 88.75, miaEfficacy: 40 },
          after: { ua: 47, ra: 89.5, ta: 87.25, miaEfficacy: 61.5 },
        },
        totalSeconds: 21.25,
      },
      {
        requestId: 'erase-row-9',
        createdAt: '2026-01-04T00:00:00.000Z',
        mode: 'exact',
        method: 'sisa replay',
        samples: 1,
        subjects: [],
        retrained: 'shards 3 + router',
        totalSeconds: 8,
      },
    ];
    const written = await writeReport({ ...input, forgets: [], erasures }, out);
    // No charts of their own: the page's images are the training curve only.
    expect(written.charts).toEqual([join(out, 'training-curve.png')]);
    const html = readFileSync(written.html, 'utf8');
    expect(html).toContain('<h2>Sample and subject erasures</h2>');
    expect(html).not.toContain('No forget requests yet.');
    const rowOf = (id: string): string[] =>
      [
        ...(html.match(new RegExp(`<tr><td><code>${id}</code>.*?</tr>`))?.[0] ?? '').matchAll(
          /<td>(.*?)<\/td>/g,
        ),
      ].map((m) => m[1]!);
    expect(rowOf('erase-4711')).toEqual([
      '<code>erase-4711</code>',
      '2026-01-03T00:00:00.000Z',
      'neggrad+ (approximate)',
      '12 (subject 4711 &lt;i&gt;)',
      'e0, e1 + router',
      '12.50 → 47.00',
      '90.25 → 89.50',
      '88.75 → 87.25',
      '40.00 → 61.50',
      '21.3 s',
    ]);
    expect(rowOf('erase-row-9')).toEqual([
      '<code>erase-row-9</code>',
      '2026-01-04T00:00:00.000Z',
      'sisa replay (exact)',
      '1',
      'shards 3 + router',
      '—',
      '—',
      '—',
      '—',
      '8.0 s',
    ]);
    expect(html).not.toContain('<i>');
  });

  it('rejects a receipt whose per-class numbers do not match the classes', async () => {
    const bad: ReportForget = {
      ...forget,
      metrics: { ...forget.metrics, after: { ...forget.metrics.after, perClassTest: [1, 2] } },
    };
    const out = join(work, 'bad');
    await expect(writeReport({ ...input, forgets: [bad] }, out)).rejects.toThrow(MetricsError);
    await expect(writeReport({ ...input, forgets: [bad] }, out)).rejects.toThrow(
      /forget-bird-1: after has 2 per-class accuracies for 3 classes/,
    );
    expect(existsSync(join(out, 'report.html'))).toBe(false);
  });
});
