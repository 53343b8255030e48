import { DataError } from './errors';

export type Split = 'train' | 'test';

/**
 * An in-memory image classification dataset. Pixels are kept as bytes (4× smaller than floats;
 * CIFAR-10 train is 150 MiB this way); scaling and normalisation happen per batch.
 */
export interface Dataset {
  /** Short name used in sample ids, e.g. `cifar10`. Never contains ':'. */
  name: string;
  split: Split;
  /** Class names in label order. */
  classes: string[];
  height: number;
  width: number;
  channels: 3;
  /** Number of samples held. */
  size: number;
  /** size*height*width*3 bytes, NHWC with interleaved RGB. */
  images: Uint8Array;
  labels: Int32Array;
  /** CIFAR-100 only: the 20 superclass labels, kept whichever label set is primary. */
  coarseLabels?: Int32Array;
  coarseClasses?: string[];
  /**
   * Local position → index in the original full dataset. Identity for a freshly read dataset;
   * subsets keep the original indices so sample ids survive subsetting, which forgetting relies
   * on.
   */
  indices: Int32Array;
  /** Path the data was read from. */
  source: string;
}

export interface SampleRef {
  dataset: string;
  split: Split;
  index: number;
}

/** Identity index map for a dataset of `size` samples. */
export function identityIndices(size: number): Int32Array {
  const out = new Int32Array(size);
  for (let i = 0; i < size; i++) out[i] = i;
  return out;
}

/** Formats a sample id from its parts. */
export function formatSampleId(dataset: string, split: Split, index: number): string {
  if (dataset.length === 0 || dataset.includes(':')) {
    throw new Error(
      `dataset name must be non-empty and contain no ':': ${JSON.stringify(dataset)}`,
    );
  }
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new Error(`sample index must be a non-negative integer: ${index}`);
  }
  return `${dataset}:${split}:${index}`;
}

/** Stable id of the sample at local position `position`, e.g. `cifar10:train:123`. */
export function sampleId(ds: Dataset, position: number): string {
  checkPosition(ds, position);
  return formatSampleId(ds.name, ds.split, ds.indices[position]!);
}

const SAMPLE_ID = /^([^:]+):(train|test):(0|[1-9][0-9]*)$/;

/** Parses `<dataset>:<split>:<index>`; throws on anything else. */
export function parseSampleId(id: string): SampleRef {
  const m = SAMPLE_ID.exec(id);
  if (m === null) {
    throw new Error(
      `malformed sample id ${JSON.stringify(id)}: expected "<dataset>:<train|test>:<index>"`,
    );
  }
  const index = Number(m[3]);
  if (!Number.isSafeInteger(index)) throw new Error(`sample id index too large: ${id}`);
  return { dataset: m[1]!, split: m[2] as Split, index };
}

/**
 * Local position of the sample with this id, or -1 when it is not in `ds` (other dataset,
 * other split, or filtered out).
 */
export function findSample(ds: Dataset, id: string): number {
  const ref = parseSampleId(id);
  if (ref.dataset !== ds.name || ref.split !== ds.split) return -1;
  return positionOfIndex(ds, ref.index);
}

/** Local position holding original index `index`, or -1. */
export function positionOfIndex(ds: Dataset, index: number): number {
  const idx = ds.indices;
  // Subsets made by filterByClass or sorted index lists are increasing, so try binary search
  // first and fall back to a scan for arbitrary orders.
  let lo = 0;
  let hi = idx.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = idx[mid]!;
    if (v === index) return mid;
    if (v < index) lo = mid + 1;
    else hi = mid - 1;
  }
  return idx.indexOf(index);
}

/**
 * A new dataset holding the samples at the given local positions, in that order. Pixels are
 * copied, so the result does not pin the parent's buffer.
 */
export function subset(ds: Dataset, positions: ArrayLike<number>): Dataset {
  const n = positions.length;
  const sampleBytes = ds.height * ds.width * ds.channels;
  const images = new Uint8Array(n * sampleBytes);
  const labels = new Int32Array(n);
  const indices = new Int32Array(n);
  const coarse = ds.coarseLabels ? new Int32Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    const p = positions[i]!;
    checkPosition(ds, p);
    images.set(ds.images.subarray(p * sampleBytes, (p + 1) * sampleBytes), i * sampleBytes);
    labels[i] = ds.labels[p]!;
    indices[i] = ds.indices[p]!;
    if (coarse) coarse[i] = ds.coarseLabels![p]!;
  }
  const out: Dataset = { ...ds, size: n, images, labels, indices };
  if (coarse) out.coarseLabels = coarse;
  return out;
}

export interface FilterByClassOptions {
  /** Keep every class except the given ones (the retained set after forgetting a class). */
  exclude?: boolean;
}

/** Keeps the samples whose label is one of `classes` (names or label numbers). */
export function filterByClass(
  ds: Dataset,
  classes: number | string | readonly (number | string)[],
  options: FilterByClassOptions = {},
): Dataset {
  const wanted = new Uint8Array(ds.classes.length);
  for (const c of Array.isArray(classes) ? classes : [classes]) {
    wanted[resolveClass(ds, c as number | string)] = 1;
  }
  const keep = options.exclude ? 0 : 1;
  const positions: number[] = [];
  for (let i = 0; i < ds.size; i++) {
    if (wanted[ds.labels[i]!] === keep) positions.push(i);
  }
  return subset(ds, positions);
}

/** Label number for a class given by name or number; throws when unknown. */
export function resolveClass(ds: Dataset, c: number | string): number {
  if (typeof c === 'number') {
    if (!Number.isInteger(c) || c < 0 || c >= ds.classes.length) {
      throw new RangeError(`class ${c} out of range 0..${ds.classes.length - 1}`);
    }
    return c;
  }
  const i = ds.classes.indexOf(c);
  if (i < 0) throw new RangeError(`unknown class ${JSON.stringify(c)} in ${ds.name}`);
  return i;
}

/** Checks a dataset's arrays agree with its declared sizes. */
export function validateDataset(ds: Dataset): void {
  const expect = ds.size * ds.height * ds.width * ds.channels;
  const fail = (problem: string): never => {
    throw new DataError(ds.source, problem);
  };
  if (ds.images.length !== expect) fail(`images has ${ds.images.length} bytes, expected ${expect}`);
  if (ds.labels.length !== ds.size) fail(`labels has ${ds.labels.length} entries, not ${ds.size}`);
  if (ds.indices.length !== ds.size)
    fail(`indices has ${ds.indices.length} entries, not ${ds.size}`);
}

function checkPosition(ds: Dataset, position: number): void {
  if (!Number.isInteger(position) || position < 0 || position >= ds.size) {
    throw new RangeError(`position ${position} out of range 0..${ds.size - 1} in ${ds.name}`);
  }
}
