import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataError, openDataset, readCifar10, readCifar100, sampleId } from '../src/index';
import {
  CIFAR10_NAMES,
  at,
  cifar100Labels,
  cifar10Label,
  cifarRecord,
  concat,
  pixel,
  tempDir,
  writeCifar10,
  writeCifar100,
} from './helpers';

/** Awaits a rejection and returns it, failing the test when the promise resolves. */
async function rejection(p: Promise<unknown>): Promise<DataError> {
  const err: unknown = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataError);
  return err as DataError;
}

describe('readCifar10', () => {
  it('reads train batches in order and converts planes to NHWC', async () => {
    const root = await tempDir();
    await writeCifar10(root);
    const ds = await readCifar10(root, 'train');
    expect(ds.name).toBe('cifar10');
    expect(ds.split).toBe('train');
    expect(ds.classes).toEqual(CIFAR10_NAMES);
    expect([ds.size, ds.height, ds.width, ds.channels]).toEqual([10, 32, 32, 3]);
    expect(ds.images.length).toBe(10 * 32 * 32 * 3);
    expect(Array.from(ds.labels)).toEqual(Array.from({ length: 10 }, (_, n) => cifar10Label(n)));
    expect(Array.from(ds.indices)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const [n, r, c] of [
      [0, 0, 0],
      [0, 0, 1],
      [0, 1, 0],
      [4, 17, 29],
      [9, 31, 31],
    ] as const) {
      for (let ch = 0; ch < 3; ch++) expect(at(ds.images, n, r, c, ch)).toBe(pixel(n, r, c, ch));
    }
    expect(sampleId(ds, 7)).toBe('cifar10:train:7');
  });

  it('reads the test batch, from the batches folder itself too', async () => {
    const root = await tempDir();
    const dir = await writeCifar10(root);
    const ds = await readCifar10(dir, 'test');
    expect(ds.size).toBe(3);
    expect(Array.from(ds.labels)).toEqual([100, 101, 102].map(cifar10Label));
    expect(at(ds.images, 2, 5, 6, 2)).toBe(pixel(102, 5, 6, 2));
    expect(ds.source).toBe(dir);
  });

  it('names a truncated file', async () => {
    const root = await tempDir();
    const dir = await writeCifar10(root);
    await truncate(join(dir, 'data_batch_3.bin'), 3000);
    const err = await rejection(readCifar10(root, 'train'));
    expect(err.message).toContain('data_batch_3.bin');
    expect(err.message).toMatch(/not a multiple of the 3073-byte record/);
  });

  it('names a file with a label out of range', async () => {
    const root = await tempDir();
    const dir = await writeCifar10(root);
    const recs = concat([cifarRecord([1], 0), cifarRecord([10], 1)]);
    await writeFile(join(dir, 'data_batch_2.bin'), recs);
    const err = await rejection(readCifar10(root, 'train'));
    expect(err.message).toContain('data_batch_2.bin');
    expect(err.message).toMatch(/label 10 out of range 0\.\.9 in record 1/);
  });

  it('names a missing batch file and a missing meta file', async () => {
    const root = await tempDir();
    const dir = await writeCifar10(root);
    await rm(join(dir, 'data_batch_5.bin'));
    const err = await rejection(readCifar10(root, 'train'));
    expect(err.message).toContain('data_batch_5.bin');
    expect(err.message).toMatch(/missing/);
    await rm(join(dir, 'batches.meta.txt'));
    const err2 = await rejection(readCifar10(root, 'test'));
    expect(err2.message).toContain('batches.meta.txt');
  });

  it('warns about each batch shorter than the official 10,000 records, naming file and count, and reads it', async () => {
    const root = await tempDir();
    const dir = await writeCifar10(root);
    const warnings: string[] = [];
    const ds = await readCifar10(root, 'test', { onWarning: (m) => warnings.push(m) });
    expect(ds.size).toBe(3);
    // Every file of the layout, not only the split read: eval reads test but trains on nothing.
    expect(warnings).toHaveLength(6);
    expect(warnings).toContain(
      `${join(dir, 'data_batch_1.bin')}: 2 records, fewer than the 10000 of the official file (a subset, or a copy cut short?)`,
    );
    expect(warnings).toContainEqual(expect.stringMatching(/test_batch\.bin: 3 records, /));
  });

  it('fails on the test split too when a training batch is missing, empty or cut mid-record', async () => {
    for (const damage of [
      (file: string) => rm(file),
      (file: string) => writeFile(file, new Uint8Array(0)),
      (file: string) => truncate(file, 3073 + 100),
    ]) {
      const root = await tempDir();
      const dir = await writeCifar10(root);
      await damage(join(dir, 'data_batch_4.bin'));
      const err = await rejection(readCifar10(root, 'test'));
      expect(err.message).toContain('data_batch_4.bin');
      expect(err.message).toMatch(/missing data file|empty data file|not a multiple/);
    }
  });

  it('rejects an empty file and a missing directory', async () => {
    const root = await tempDir();
    const dir = await writeCifar10(root);
    await writeFile(join(dir, 'test_batch.bin'), new Uint8Array(0));
    expect((await rejection(readCifar10(root, 'test'))).message).toContain('test_batch.bin');
    const missing = join(root, 'nope');
    expect((await rejection(readCifar10(missing, 'test'))).message).toContain(missing);
  });
});

describe('readCifar100', () => {
  it('keeps fine and coarse labels and converts to NHWC', async () => {
    const root = await tempDir();
    await writeCifar100(root);
    const fine = await readCifar100(root, 'train');
    expect(fine.name).toBe('cifar100');
    expect(fine.size).toBe(6);
    expect(fine.classes.length).toBe(100);
    expect(fine.coarseClasses?.length).toBe(20);
    const expected = [0, 1, 2, 3, 4, 5].map(cifar100Labels);
    expect(Array.from(fine.labels)).toEqual(expected.map((l) => l[1]));
    expect(Array.from(fine.coarseLabels!)).toEqual(expected.map((l) => l[0]));
    expect(at(fine.images, 3, 12, 30, 1)).toBe(pixel(3, 12, 30, 1));
    expect(at(fine.images, 5, 31, 0, 2)).toBe(pixel(5, 31, 0, 2));

    const coarse = await readCifar100(root, 'test', { label: 'coarse' });
    expect(coarse.classes[0]).toBe('coarse0');
    expect(Array.from(coarse.labels)).toEqual([200, 201].map((n) => cifar100Labels(n)[0]));
    expect(at(coarse.images, 1, 0, 0, 0)).toBe(pixel(201, 0, 0, 0));
    expect(sampleId(coarse, 1)).toBe('cifar100:test:1');

    const viaSpec = await openDataset(`cifar100-coarse:${root}`, 'train');
    expect(Array.from(viaSpec.labels)).toEqual(expected.map((l) => l[0]));
  });

  it('names the file on a bad fine or coarse label and on truncation', async () => {
    const root = await tempDir();
    const dir = await writeCifar100(root);
    await writeFile(join(dir, 'train.bin'), concat([cifarRecord([3, 100], 0)]));
    let err = await rejection(readCifar100(root, 'train'));
    expect(err.message).toContain('train.bin');
    expect(err.message).toMatch(/label 100 out of range 0\.\.99/);
    await writeFile(join(dir, 'train.bin'), concat([cifarRecord([20, 1], 0)]));
    err = await rejection(readCifar100(root, 'train'));
    expect(err.message).toMatch(/label 20 out of range 0\.\.19/);
    const good = await readFile(join(dir, 'test.bin'));
    await writeFile(join(dir, 'test.bin'), good.subarray(0, good.length - 1));
    err = await rejection(readCifar100(root, 'test'));
    expect(err.message).toContain('test.bin');
    expect(err.message).toMatch(/3074-byte record/);
  });

  it('names a missing label-names file', async () => {
    const root = await tempDir();
    const dir = await writeCifar100(root);
    await rm(join(dir, 'coarse_label_names.txt'));
    const err = await rejection(readCifar100(root, 'train'));
    expect(err.message).toContain('coarse_label_names.txt');
  });
});

describe('openDataset', () => {
  it('dispatches on the scheme and rejects unknown ones clearly', async () => {
    const root = await tempDir();
    await writeCifar10(root);
    const ds = await openDataset(`cifar10:${root}`, 'test');
    expect(ds.size).toBe(3);
    await expect(openDataset(`mnist:${root}`, 'train')).rejects.toThrow(
      /unknown dataset spec "mnist:.*expected one of cifar10:DIR, cifar100:DIR, cifar100-coarse:DIR, folder:DIR/,
    );
    await expect(openDataset(root, 'train')).rejects.toThrow(/unknown dataset spec/);
    await expect(openDataset('cifar10:', 'train')).rejects.toThrow(/no directory/);
  });

  it('passes short-batch warnings on, for CIFAR-100 against its 50,000-record train.bin', async () => {
    const root = await tempDir();
    await writeCifar100(root);
    const warnings: string[] = [];
    await openDataset(`cifar100-coarse:${root}`, 'train', { onWarning: (m) => warnings.push(m) });
    expect(warnings).toEqual([
      expect.stringMatching(/train\.bin: 6 records, fewer than the 50000 of the official file/),
      expect.stringMatching(/test\.bin: 2 records, fewer than the 10000 of the official file/),
    ]);
  });
});
