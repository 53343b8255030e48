import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

const made: string[] = [];

/** A fresh temp dir, removed after the current test. */
export async function tempDir(prefix = 'lethe-data-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** Pixel byte of synthetic image `n` at row r, column c, channel ch: distinct per position. */
export function pixel(n: number, r: number, c: number, ch: number): number {
  return (n * 37 + r * 5 + c * 3 + ch * 101) & 255;
}

/** One CIFAR record: label bytes, then R, G and B planes, each row-major. */
export function cifarRecord(labels: number[], n: number): Uint8Array {
  const rec = new Uint8Array(labels.length + 3072);
  rec.set(labels, 0);
  for (let ch = 0; ch < 3; ch++) {
    for (let r = 0; r < 32; r++) {
      for (let c = 0; c < 32; c++) {
        rec[labels.length + ch * 1024 + r * 32 + c] = pixel(n, r, c, ch);
      }
    }
  }
  return rec;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const CIFAR10_NAMES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

/** Label of synthetic sample n (its global index) in the fake CIFAR-10 set. */
export const cifar10Label = (n: number): number => (n * 3) % 10;

/** Per-batch record counts of the synthetic CIFAR-10 train set (10 records in all). */
export const CIFAR10_BATCH_SIZES = [2, 3, 1, 2, 2];

/**
 * Writes `root/cifar-10-batches-bin/` with 10 train and 3 test records; sample n (counting
 * across batch files) has label cifar10Label(n) and pixels pixel(n, …). Test records use
 * n = 100, 101, 102.
 */
export async function writeCifar10(root: string): Promise<string> {
  const dir = join(root, 'cifar-10-batches-bin');
  await mkdir(dir, { recursive: true });
  let n = 0;
  for (let b = 0; b < 5; b++) {
    const recs: Uint8Array[] = [];
    for (let k = 0; k < CIFAR10_BATCH_SIZES[b]!; k++, n++) {
      recs.push(cifarRecord([cifar10Label(n)], n));
    }
    await writeFile(join(dir, `data_batch_${b + 1}.bin`), concat(recs));
  }
  const test = [100, 101, 102].map((m) => cifarRecord([cifar10Label(m)], m));
  await writeFile(join(dir, 'test_batch.bin'), concat(test));
  await writeFile(join(dir, 'batches.meta.txt'), CIFAR10_NAMES.join('\n') + '\n\n');
  return dir;
}

/** Coarse and fine labels of synthetic CIFAR-100 sample n. */
export const cifar100Labels = (n: number): [number, number] => [(n * 7) % 20, (n * 13) % 100];

/** Writes `root/cifar-100-binary/` with 6 train and 2 test records (test n = 200, 201). */
export async function writeCifar100(root: string): Promise<string> {
  const dir = join(root, 'cifar-100-binary');
  await mkdir(dir, { recursive: true });
  const train = [0, 1, 2, 3, 4, 5].map((n) => cifarRecord(cifar100Labels(n), n));
  const test = [200, 201].map((n) => cifarRecord(cifar100Labels(n), n));
  await writeFile(join(dir, 'train.bin'), concat(train));
  await writeFile(join(dir, 'test.bin'), concat(test));
  const fine = Array.from({ length: 100 }, (_, i) => `fine${i}`);
  const coarse = Array.from({ length: 20 }, (_, i) => `coarse${i}`);
  await writeFile(join(dir, 'fine_label_names.txt'), fine.join('\n') + '\n');
  await writeFile(join(dir, 'coarse_label_names.txt'), coarse.join('\n') + '\n');
  return dir;
}

/** Byte at (r, c, ch) of an NHWC dataset image n. */
export function at(
  images: Uint8Array,
  n: number,
  r: number,
  c: number,
  ch: number,
  side = 32,
): number {
  return images[((n * side + r) * side + c) * 3 + ch]!;
}
