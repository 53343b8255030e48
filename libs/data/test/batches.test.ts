import { describe, expect, it } from 'vitest';
import {
  BatchSampler,
  type Batch,
  type Dataset,
  batches,
  channelStats,
  CIFAR10_STATS,
  createRng,
  epochPermutation,
  gatherBatch,
  identityIndices,
} from '../src/index';

const ID = { mean: [0, 0, 0], std: [1, 1, 1] } as {
  mean: [number, number, number];
  std: [number, number, number];
};

/** n copies-ish of a 32×32 image where R = 8·row + 1, G = 8·col + 1, B = 255 (never 0). */
function grid(n: number): Dataset {
  const images = new Uint8Array(n * 3072);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < 32; r++) {
      for (let c = 0; c < 32; c++)
        images.set([8 * r + 1, 8 * c + 1, 255], i * 3072 + (r * 32 + c) * 3);
    }
  }
  return {
    name: 'grid',
    split: 'train',
    classes: ['a', 'b'],
    height: 32,
    width: 32,
    channels: 3,
    size: n,
    images,
    labels: Int32Array.from({ length: n }, (_, i) => i % 2),
    indices: identityIndices(n),
    source: '/grid',
  };
}

const all = (it: Iterable<Batch>): Batch[] => Array.from(it);

/** Reads back an output image as bytes (only valid with the identity normalisation). */
function bytesAt(b: Batch, k: number, r: number, c: number): [number, number, number] {
  const o = k * 3072 + (r * 32 + c) * 3;
  return [0, 1, 2].map((ch) => Math.round(b.x[o + ch]! * 255)) as [number, number, number];
}

/**
 * Finds the (dy, dx, flipped) that explains output k from the grid image, then checks every
 * pixel against it: inside the window it must be the shifted (and maybe mirrored) source, and
 * outside it the zero padding.
 */
function explain(b: Batch, k: number, pad: number): { dy: number; dx: number; flipped: boolean } {
  // Row 16 is inside any window with pad <= 15; find two neighbouring non-padding pixels there.
  let c = 0;
  while (c < 31 && (bytesAt(b, k, 16, c)[2] !== 255 || bytesAt(b, k, 16, c + 1)[2] !== 255)) c++;
  const [r0, g0] = bytesAt(b, k, 16, c);
  const g1 = bytesAt(b, k, 16, c + 1)[1];
  const flipped = g1 < g0;
  const dy = (r0 - 1) / 8 - 16;
  const sc = (g0 - 1) / 8;
  const dx = flipped ? sc - (31 - c) : sc - c;
  expect(Math.abs(dy) <= pad && Math.abs(dx) <= pad, `output ${k}: shift ${dy},${dx}`).toBe(true);
  for (let r = 0; r < 32; r++) {
    for (let col = 0; col < 32; col++) {
      const sr = r + dy;
      const scol = (flipped ? 31 - col : col) + dx;
      const inside = sr >= 0 && sr < 32 && scol >= 0 && scol < 32;
      const want = inside ? [8 * sr + 1, 8 * scol + 1, 255] : [0, 0, 0];
      const got = bytesAt(b, k, r, col);
      // One expect per pixel would make this test slow; only report the first mismatch.
      if (got.some((v, ch) => v !== want[ch])) {
        expect(got, `output ${k} at ${r},${col} (shift ${dy},${dx}, flip ${flipped})`).toEqual(
          want,
        );
      }
    }
  }
  return { dy, dx, flipped };
}

describe('batches', () => {
  it('is repeatable for a seed and differs across seeds and epochs', () => {
    const ds = grid(50);
    const opts = { batchSize: 8, seed: 11, normalise: CIFAR10_STATS, augment: {} };
    const a = all(batches(ds, opts));
    const b = all(batches(ds, opts));
    expect(a.length).toBe(7);
    expect(a.at(-1)!.size).toBe(2);
    for (let i = 0; i < a.length; i++) {
      expect(Array.from(b[i]!.positions)).toEqual(Array.from(a[i]!.positions));
      expect(Buffer.from(b[i]!.x.buffer).equals(Buffer.from(a[i]!.x.buffer))).toBe(true);
      expect(Array.from(b[i]!.y)).toEqual(Array.from(a[i]!.positions, (p) => p % 2));
    }
    const c = all(batches(ds, { ...opts, seed: 12 }));
    expect(Array.from(c[0]!.positions)).not.toEqual(Array.from(a[0]!.positions));
    const sampler = new BatchSampler(ds, opts);
    expect(Array.from(all(sampler.epoch(0))[0]!.positions)).toEqual(Array.from(a[0]!.positions));
    expect(Array.from(all(sampler.epoch(1))[0]!.positions)).not.toEqual(
      Array.from(a[0]!.positions),
    );
    const seen = a.flatMap((x) => Array.from(x.positions)).sort((p, q) => p - q);
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('keeps order without shuffle, drops the last batch, and restricts to indices', () => {
    const ds = grid(10);
    const plain = all(batches(ds, { batchSize: 4, shuffle: false, dropLast: true, normalise: ID }));
    expect(plain.map((b) => Array.from(b.positions))).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
    const restricted = all(
      batches(ds, { batchSize: 3, seed: 1, normalise: ID, indices: Int32Array.from([9, 2, 5, 7]) }),
    );
    const got = restricted.flatMap((b) => Array.from(b.positions)).sort((p, q) => p - q);
    expect(got).toEqual([2, 5, 7, 9]);
    expect(restricted.map((b) => b.size)).toEqual([3, 1]);
    expect(() => batches(ds, { batchSize: 0, normalise: ID })).toThrow(/batchSize/);
    expect(() =>
      batches(ds, { batchSize: 1, normalise: ID, indices: Int32Array.from([10]) }),
    ).toThrow(/out of range/);
  });

  it('exposes the epoch permutation', () => {
    const p = epochPermutation(20, 5, 0);
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(Array.from(epochPermutation(20, 5, 0))).toEqual(Array.from(p));
    expect(Array.from(epochPermutation(20, 5, 1))).not.toEqual(Array.from(p));
    const sub = epochPermutation([3, 8, 13], 5, 0);
    expect(Array.from(sub).sort((a, b) => a - b)).toEqual([3, 8, 13]);
  });

  it('without augmentation copies pixels exactly, scaled to [0,1]', () => {
    const ds = grid(3);
    const [b] = all(batches(ds, { batchSize: 3, shuffle: false, normalise: ID }));
    expect(b!.x.length).toBe(3 * 3072);
    expect(explain(b!, 1, 0)).toEqual({ dy: 0, dx: 0, flipped: false });
    expect(b!.x[(5 * 32 + 7) * 3]).toBeCloseTo(41 / 255, 6);
  });

  it('crops a zero-padded window and flips horizontally, as seeded', () => {
    const ds = grid(200);
    const seenCrop = new Set<string>();
    const [cropped] = all(
      batches(ds, { batchSize: 200, seed: 3, normalise: ID, augment: { crop: 4, flip: false } }),
    );
    for (let k = 0; k < 200; k++) {
      const e = explain(cropped!, k, 4);
      expect(e.flipped).toBe(false);
      seenCrop.add(`${e.dy},${e.dx}`);
    }
    // 81 possible windows; 200 draws should hit most, and every extreme shift.
    expect(seenCrop.size).toBeGreaterThan(50);
    const shifts = [...seenCrop].map((k) => k.split(',').map(Number));
    expect(Math.min(...shifts.map((d) => d[0]!))).toBe(-4);
    expect(Math.max(...shifts.map((d) => d[0]!))).toBe(4);
    expect(Math.min(...shifts.map((d) => d[1]!))).toBe(-4);
    expect(Math.max(...shifts.map((d) => d[1]!))).toBe(4);

    const [flipped] = all(
      batches(ds, { batchSize: 200, seed: 3, normalise: ID, augment: { crop: 0, flip: true } }),
    );
    let flips = 0;
    for (let k = 0; k < 200; k++) {
      const e = explain(flipped!, k, 0);
      if (e.flipped) flips++;
      // Column 0 of a flipped output is the source's last column.
      expect(bytesAt(flipped!, k, 0, 0)[1]).toBe(e.flipped ? 8 * 31 + 1 : 1);
    }
    expect(flips).toBeGreaterThan(70);
    expect(flips).toBeLessThan(130);

    const [both] = all(batches(ds, { batchSize: 200, seed: 3, normalise: ID, augment: {} }));
    const kinds = new Set<boolean>();
    for (let k = 0; k < 200; k++) kinds.add(explain(both!, k, 4).flipped);
    expect(kinds.size).toBe(2);
  });

  it('augments a sample the same way whichever batch it lands in', () => {
    const ds = grid(30);
    const opts = { normalise: CIFAR10_STATS, augment: {}, seed: 9, epoch: 2 };
    const alone = gatherBatch(ds, [17], opts);
    const inBatch = gatherBatch(ds, [4, 17, 22], opts);
    expect(Array.from(inBatch.x.subarray(3072, 6144))).toEqual(Array.from(alone.x));
    const everyone = Array.from({ length: 30 }, (_, i) => i);
    const e2 = gatherBatch(ds, everyone, opts);
    const e3 = gatherBatch(ds, everyone, { ...opts, epoch: 3 });
    expect(Buffer.from(e3.x.buffer).equals(Buffer.from(e2.x.buffer))).toBe(false);
    const s10 = gatherBatch(ds, everyone, { ...opts, seed: 10 });
    expect(Buffer.from(s10.x.buffer).equals(Buffer.from(e2.x.buffer))).toBe(false);
  });

  it('normalises with (x/255 - mean) / std per channel', () => {
    const ds = grid(1);
    ds.images.set([0, 51, 255], 0);
    const norm = {
      mean: [0.5, 0.25, 0] as [number, number, number],
      std: [0.5, 0.25, 2] as [number, number, number],
    };
    const [b] = all(batches(ds, { batchSize: 1, normalise: norm }));
    expect(b!.x[0]).toBeCloseTo(-1, 6);
    expect(b!.x[1]).toBeCloseTo((0.2 - 0.25) / 0.25, 6);
    expect(b!.x[2]).toBeCloseTo(0.5, 6);
    // Pixel (0,1): R = 1, G = 9, B = 255.
    expect(b!.x[3]).toBeCloseTo((1 / 255 - 0.5) / 0.5, 6);
    expect(b!.x[4]).toBeCloseTo((9 / 255 - 0.25) / 0.25, 6);
    expect(() =>
      all(batches(ds, { batchSize: 1, normalise: { mean: [0, 0, 0], std: [1, 0, 1] } })),
    ).toThrow(/std/);
  });
});

describe('channelStats', () => {
  it('gives mean and population std on [0,1]', () => {
    const ds = grid(1);
    // Two values per channel, equally often: 0 and 255 → mean 0.5, std 0.5.
    for (let p = 0; p < 1024; p++) ds.images.set(p % 2 ? [255, 51, 102] : [0, 51, 0], p * 3);
    const s = channelStats(ds);
    expect(s.mean[0]).toBeCloseTo(0.5, 10);
    expect(s.std[0]).toBeCloseTo(0.5, 10);
    expect(s.mean[1]).toBeCloseTo(0.2, 10);
    expect(s.std[1]).toBeCloseTo(0, 10);
    expect(s.mean[2]).toBeCloseTo(0.2, 10);
    expect(s.std[2]).toBeCloseTo(0.2, 10);
  });

  it('makes normalised batches zero-mean and unit-std', () => {
    const ds = grid(4);
    const rng = createRng(1);
    for (let i = 0; i < ds.images.length; i++) ds.images[i] = rng.int(256);
    const stats = channelStats(ds);
    const [b] = all(batches(ds, { batchSize: 4, normalise: stats }));
    for (let c = 0; c < 3; c++) {
      let sum = 0;
      let sq = 0;
      const n = b!.x.length / 3;
      for (let i = c; i < b!.x.length; i += 3) {
        sum += b!.x[i]!;
        sq += b!.x[i]! * b!.x[i]!;
      }
      expect(sum / n).toBeCloseTo(0, 4);
      expect(Math.sqrt(sq / n)).toBeCloseTo(1, 4);
    }
    const sub = channelStats(ds, [1, 2]);
    expect(sub.mean).not.toEqual(stats.mean);
    const whole = channelStats(ds, [0, 1, 2, 3]);
    expect(whole.mean).toEqual(stats.mean);
  });
});
