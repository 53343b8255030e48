import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lethe, writeCifar10 } from './fixtures';

const work = mkdtempSync(join(tmpdir(), 'lethe-cli-report-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('lethe report', () => {
  it('writes report.html with charts of training and of a forget receipt', () => {
    const data = `cifar10:${writeCifar10(work, 24, 8)}`;
    const store = join(work, 'store');
    const out = join(work, 'report');
    const common = ['--data', data, '--store', store, '--batch', '16'];
    const train = lethe([
      'train',
      ...common,
      '--preset',
      'tiny',
      '--experts',
      '3',
      '--epochs',
      '2',
    ]);
    expect(train.status, train.stderr).toBe(0);
    const forget = lethe([
      'forget',
      ...common,
      '--class',
      'cross',
      '--epochs',
      '2',
      '--request-id',
      'report-1',
    ]);
    expect(forget.status, forget.stderr).toBe(0);
    // A person's samples too: a row in the erasures table, no charts.
    const listed = lethe(['samples', '--store', store, '--class', 'square', '--json']);
    const sample = (JSON.parse(listed.stdout) as { sampleId: string }[])[0]!.sampleId;
    const erase = lethe(['forget', ...common, '--samples', sample, '--request-id', 'report-2']);
    expect(erase.status, erase.stderr).toBe(0);

    const report = lethe(['report', '--store', store, '--out', out]);
    expect(report.status, report.stderr).toBe(0);
    expect(report.stdout).toContain(
      `wrote ${join(out, 'report.html')} with 4 charts (1 class forget, 1 sample or subject erasure)`,
    );
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const images = [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]!);
    expect(images).toEqual([
      'training-curve.png',
      'forget-report-1-per-class.png',
      'forget-report-1-routing.png',
      'forget-report-1-unlearning-curve.png',
    ]);
    for (const image of images) {
      const png = readFileSync(join(out, image));
      expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      expect(png.length).toBeGreaterThan(10_000);
      expect(existsSync(join(out, image.replace(/\.png$/, '.svg')))).toBe(true);
    }
    expect(html).toContain('report-1');
    expect(html).toMatch(
      /<tr><td><code>report-2<\/code><\/td><td>[^<]+<\/td><td>neggrad\+ \(approximate\)<\/td><td>1<\/td>/,
    );
    expect(html).toMatch(/preset<\/th><td>tiny/);
    expect(html).toContain('square, disc, cross, h-stripes');
    // UA, RA, TA, forgotten-class accuracy, MIA-Efficacy; the feature probe only in a full
    // measurement (--measure full), else a dash.
    expect(html).toMatch(
      /<th>after<\/th>(<td class="num">\d+\.\d\d<\/td>){5}<td class="num">(\d+\.\d\d|—)<\/td>/,
    );
  });

  it('fails with one clear line on a store without a model', () => {
    const run = lethe(['report', '--store', join(work, 'empty'), '--out', join(work, 'none')]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^lethe: error: no trained model in .*empty\n$/);
    expect(existsSync(join(work, 'none'))).toBe(false);
  });
});
