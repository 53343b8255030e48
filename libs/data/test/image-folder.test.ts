import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DataError, openDataset, readImageFolder, sampleId } from '../src/index';
import { at, tempDir } from './helpers';

/** A size×size RGB image whose bytes encode (seed, row, column, channel). */
function rgb(seed: number, size = 32): Buffer {
  const buf = Buffer.alloc(size * size * 3);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      for (let ch = 0; ch < 3; ch++)
        buf[(r * size + c) * 3 + ch] = (seed * 50 + r * 7 + c * 3 + ch * 60) & 255;
    }
  }
  return buf;
}

async function png(raw: Buffer, size = 32, channels: 1 | 2 | 3 | 4 = 3): Promise<Buffer> {
  return sharp(raw, { raw: { width: size, height: size, channels } })
    .png()
    .toBuffer();
}

async function put(file: string, data: Buffer): Promise<void> {
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, data);
}

describe('readImageFolder', () => {
  it('reads PNGs exactly, with classes and files in name order', async () => {
    const root = await tempDir();
    // Written out of order on purpose; code-unit order is 10 < 2 < B < a < b < c < d.
    const order = ['c', '2', 'b', 'B', '10', 'd', 'a'];
    for (const [seed, name] of order.entries()) {
      await put(join(root, 'zebra', `${name}.png`), await png(rgb(seed)));
    }
    await put(join(root, 'apple', 'x.PNG'), await png(rgb(9)));
    await put(join(root, 'zebra', 'notes.txt'), Buffer.from('ignored'));
    await put(join(root, 'README'), Buffer.from('ignored'));
    const ds = await readImageFolder(root, 'train');
    expect(ds.classes).toEqual(['apple', 'zebra']);
    expect(ds.size).toBe(8);
    expect(Array.from(ds.labels)).toEqual([0, 1, 1, 1, 1, 1, 1, 1]);
    const sorted = ['10', '2', 'B', 'a', 'b', 'c', 'd'];
    const seeds = [9, ...sorted.map((name) => order.indexOf(name))];
    for (let n = 0; n < ds.size; n++) {
      const want = rgb(seeds[n]!);
      const got = Buffer.from(ds.images.subarray(n * 3072, (n + 1) * 3072));
      expect(got.equals(want), `sample ${n}`).toBe(true);
    }
    expect(sampleId(ds, 3)).toMatch(/^lethe-data-.*:train:3$/);
  });

  it('decodes JPEG closely, drops alpha, expands grey and resizes', async () => {
    const root = await tempDir();
    const flat = (v: number[], size: number, ch: number): Buffer => {
      const b = Buffer.alloc(size * size * ch);
      for (let i = 0; i < b.length; i++) b[i] = v[i % ch]!;
      return b;
    };
    const cls = join(root, 'train', 'only');
    // JPEG is lossy, so use a smooth image that it can represent closely.
    const smooth = Buffer.alloc(3072);
    for (let i = 0; i < 1024; i++) smooth.set([(i >> 5) * 8, (i & 31) * 8, 128], i * 3);
    await put(
      join(cls, 'a.jpg'),
      await sharp(smooth, { raw: { width: 32, height: 32, channels: 3 } })
        .jpeg({ quality: 95 })
        .toBuffer(),
    );
    await put(join(cls, 'b.png'), await png(flat([10, 20, 30, 0], 32, 4), 32, 4));
    await put(join(cls, 'c.png'), await png(flat([90], 32, 1), 32, 1));
    await put(
      join(cls, 'd.jpeg'),
      await sharp(flat([200, 100, 50], 64, 3), { raw: { width: 64, height: 64, channels: 3 } })
        .jpeg({ quality: 100 })
        .toBuffer(),
    );
    await put(join(cls, 'e.png'), await png(flat([1, 2, 3], 48, 3), 48, 3));
    const ds = await openDataset(`folder:${root}`, 'train', { name: 'toy' });
    expect(ds.size).toBe(5);
    expect(ds.name).toBe('toy');
    expect(ds.source).toBe(join(root, 'train'));
    let diff = 0;
    const want = smooth;
    for (let i = 0; i < 3072; i++) diff += Math.abs(ds.images[i]! - want[i]!);
    expect(diff / 3072).toBeLessThan(2);
    expect([0, 1, 2].map((ch) => at(ds.images, 1, 7, 9, ch))).toEqual([10, 20, 30]);
    expect([0, 1, 2].map((ch) => at(ds.images, 2, 31, 31, ch))).toEqual([90, 90, 90]);
    for (const ch of [0, 1, 2])
      expect(Math.abs(at(ds.images, 3, 16, 16, ch) - [200, 100, 50][ch]!)).toBeLessThanOrEqual(2);
    expect([0, 1, 2].map((ch) => at(ds.images, 4, 0, 31, ch))).toEqual([1, 2, 3]);

    const small = await readImageFolder(root, 'train', { size: 8 });
    expect([small.height, small.width, small.images.length]).toEqual([8, 8, 5 * 8 * 8 * 3]);
    expect([0, 1, 2].map((ch) => at(small.images, 1, 3, 3, ch, 8))).toEqual([10, 20, 30]);
  });

  it('reports progress', async () => {
    const root = await tempDir();
    for (let i = 0; i < 5; i++) await put(join(root, 'c', `${i}.png`), await png(rgb(i)));
    const seen: number[] = [];
    await readImageFolder(root, 'test', {
      onProgress: (done, total) => seen.push(done * 10 + total),
      concurrency: 2,
    });
    expect(seen.at(-1)).toBe(55);
  });

  it('names an unreadable image, an empty class folder, a missing split and folder', async () => {
    const root = await tempDir();
    await put(join(root, 'good', 'a.png'), await png(rgb(0)));
    await put(join(root, 'bad', 'broken.jpg'), Buffer.from('this is not a jpeg'));
    let err = await readImageFolder(root, 'train').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toContain(join(root, 'bad', 'broken.jpg'));
    expect((err as Error).message).toMatch(/cannot decode image/);

    await put(join(root, 'bad', 'broken.jpg'), (await png(rgb(0))).subarray(0, 60));
    err = await readImageFolder(root, 'train').catch((e: unknown) => e);
    expect((err as Error).message).toContain('broken.jpg');

    const empty = await tempDir();
    await put(join(empty, 'full', 'a.png'), await png(rgb(0)));
    await mkdir(join(empty, 'hollow'));
    err = await readImageFolder(empty, 'train').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toContain(join(empty, 'hollow'));
    expect((err as Error).message).toMatch(/empty class folder/);

    const split = await tempDir();
    await put(join(split, 'train', 'c', 'a.png'), await png(rgb(0)));
    err = await readImageFolder(split, 'test').catch((e: unknown) => e);
    expect((err as Error).message).toContain(join(split, 'test'));

    err = await readImageFolder(join(split, 'absent'), 'test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toContain('absent');
  });
});
