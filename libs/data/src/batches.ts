import type { Dataset } from './dataset';
import { createRng, deriveSeed } from './rng';
import type { ChannelStats } from './stats';

export interface AugmentOptions {
  /** Zero-pad by this many pixels, then take a random H×W window. Default 4; 0 disables. */
  crop?: number;
  /** Horizontal flip with probability 0.5. Default true. */
  flip?: boolean;
}

export interface GatherOptions {
  /** Applied after scaling pixels to [0,1]: (x − mean) / std per channel. */
  normalise: ChannelStats;
  /** Random crop and flip; omit for none (evaluation). */
  augment?: AugmentOptions;
  /** Seeds augmentation. Default 0. */
  seed?: number | string;
  /** Augmentation differs per epoch. Default 0. */
  epoch?: number;
}

export interface BatchOptions extends GatherOptions {
  batchSize: number;
  /** Reshuffle every epoch (seeded). Default true. */
  shuffle?: boolean;
  /** Drop a final batch smaller than batchSize. Default false. */
  dropLast?: boolean;
  /** Restrict to these local positions (e.g. one SISA shard or slice). Default: all. */
  indices?: Int32Array;
}

export interface Batch {
  /** size*H*W*3 floats, NHWC, scaled to [0,1] then normalised. */
  x: Float32Array;
  y: Int32Array;
  /** Local positions in the dataset, one per row of x. */
  positions: Int32Array;
  /** Original dataset indices (what sample ids are made of), one per row of x. */
  indices: Int32Array;
  size: number;
}

/**
 * The order in which an epoch visits `positions` (or 0..n−1 when given a count). Depends only
 * on (seed, epoch, the positions), so a replay after a crash or a forget request sees the same
 * order.
 */
export function epochPermutation(
  positions: ArrayLike<number> | number,
  seed: number | string,
  epoch: number,
): Int32Array {
  const out =
    typeof positions === 'number' ? new Int32Array(positions) : Int32Array.from(positions);
  if (typeof positions === 'number') for (let i = 0; i < positions; i++) out[i] = i;
  return createRng(deriveSeed(seed, 'permutation', epoch)).shuffle(out);
}

/**
 * Builds one batch from explicit local positions: what a worker does with the sample indices the
 * coordinator sends it. Augmentation of a sample depends only on (seed, epoch, its original
 * index), not on which batch it lands in, so it survives reshuffling and subsetting.
 */
export function gatherBatch(
  ds: Dataset,
  positions: ArrayLike<number>,
  options: GatherOptions,
): Batch {
  return new Gatherer(ds, options).gather(Int32Array.from(positions), options.epoch ?? 0);
}

/** Seeded, repeatable mini-batches over a dataset, one epoch at a time. */
export class BatchSampler implements Iterable<Batch> {
  /** Local positions this sampler draws from, in dataset order. */
  readonly positions: Int32Array;
  private readonly gatherer: Gatherer;

  constructor(
    readonly dataset: Dataset,
    readonly options: BatchOptions,
  ) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    }
    if (options.indices) {
      for (const p of options.indices) {
        if (p < 0 || p >= dataset.size) {
          throw new RangeError(`indices: position ${p} out of range 0..${dataset.size - 1}`);
        }
      }
      this.positions = options.indices;
    } else {
      this.positions = new Int32Array(dataset.size);
      for (let i = 0; i < dataset.size; i++) this.positions[i] = i;
    }
    this.gatherer = new Gatherer(dataset, options);
  }

  get batchesPerEpoch(): number {
    const n = this.positions.length;
    const b = this.options.batchSize;
    return this.options.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  /** Visiting order for an epoch. */
  order(epoch: number): Int32Array {
    return this.options.shuffle === false
      ? Int32Array.from(this.positions)
      : epochPermutation(this.positions, this.options.seed ?? 0, epoch);
  }

  *epoch(epoch: number): Generator<Batch, void, undefined> {
    const order = this.order(epoch);
    const b = this.options.batchSize;
    const count = this.batchesPerEpoch;
    for (let k = 0; k < count; k++) {
      yield this.gatherer.gather(order.subarray(k * b, Math.min((k + 1) * b, order.length)), epoch);
    }
  }

  [Symbol.iterator](): Iterator<Batch> {
    return this.epoch(this.options.epoch ?? 0);
  }
}

/** One epoch of batches; see BatchSampler for more than one. */
export function batches(ds: Dataset, options: BatchOptions): Iterable<Batch> {
  return new BatchSampler(ds, options);
}

/** Turns byte pixels into normalised floats, with optional crop and flip. */
class Gatherer {
  private readonly lut = new Float32Array(3 * 256);
  private readonly pad: number;
  private readonly flip: boolean;
  private readonly seed: number | string;

  constructor(
    private readonly ds: Dataset,
    options: GatherOptions,
  ) {
    const { mean, std } = options.normalise;
    for (let c = 0; c < 3; c++) {
      if (!(std[c]! > 0)) throw new RangeError(`normalise.std[${c}] must be > 0, got ${std[c]}`);
      for (let v = 0; v < 256; v++) this.lut[c * 256 + v] = (v / 255 - mean[c]!) / std[c]!;
    }
    this.pad = options.augment ? (options.augment.crop ?? 4) : 0;
    this.flip = options.augment ? (options.augment.flip ?? true) : false;
    if (!Number.isInteger(this.pad) || this.pad < 0) {
      throw new RangeError(`augment.crop must be a non-negative integer, got ${this.pad}`);
    }
    this.seed = options.seed ?? 0;
  }

  gather(positions: Int32Array, epoch: number): Batch {
    const { ds, lut, pad } = this;
    const { height: h, width: w, images, labels } = ds;
    const sampleFloats = h * w * 3;
    const n = positions.length;
    const x = new Float32Array(n * sampleFloats);
    const y = new Int32Array(n);
    const indices = new Int32Array(n);
    const augment = pad > 0 || this.flip;
    // Padding is black (byte 0) before normalisation, as in torchvision's RandomCrop(padding=4).
    const pad0 = lut[0]!;
    const pad1 = lut[256]!;
    const pad2 = lut[512]!;
    for (let b = 0; b < n; b++) {
      const p = positions[b]!;
      if (p < 0 || p >= ds.size) throw new RangeError(`position ${p} out of range`);
      y[b] = labels[p]!;
      indices[b] = ds.indices[p]!;
      const src = p * sampleFloats;
      let dst = b * sampleFloats;
      if (!augment) {
        for (let k = 0; k < sampleFloats; k += 3, dst += 3) {
          x[dst] = lut[images[src + k]!]!;
          x[dst + 1] = lut[256 + images[src + k + 1]!]!;
          x[dst + 2] = lut[512 + images[src + k + 2]!]!;
        }
        continue;
      }
      const rng = createRng(deriveSeed(this.seed, 'augment', epoch, indices[b]!));
      // Offsets of the window inside the padded image, shifted to source coordinates.
      const dy = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
      const dx = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
      const flipped = this.flip && rng.next() < 0.5;
      for (let i = 0; i < h; i++) {
        const si = i + dy;
        if (si < 0 || si >= h) {
          for (let j = 0; j < w; j++, dst += 3) {
            x[dst] = pad0;
            x[dst + 1] = pad1;
            x[dst + 2] = pad2;
          }
          continue;
        }
        const row = src + si * w * 3;
        for (let j = 0; j < w; j++, dst += 3) {
          // Crop first, then flip the cropped window, as torchvision composes them.
          const sj = (flipped ? w - 1 - j : j) + dx;
          if (sj < 0 || sj >= w) {
            x[dst] = pad0;
            x[dst + 1] = pad1;
            x[dst + 2] = pad2;
          } else {
            const s = row + sj * 3;
            x[dst] = lut[images[s]!]!;
            x[dst + 1] = lut[256 + images[s + 1]!]!;
            x[dst + 2] = lut[512 + images[s + 2]!]!;
          }
        }
      }
    }
    return { x, y, positions: Int32Array.from(positions), indices, size: n };
  }
}
