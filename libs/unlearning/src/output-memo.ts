import { createHash } from 'node:crypto';
import type { Dataset } from '@lethe/data';
import type { Manifest, ObjectStore } from '@lethe/store';

/**
 * What one set of weights outputs on the samples of one dataset split — raw softmax and the
 * experts each sample is routed to — by the sample's original index, filled as samples are
 * measured. Outputs of the same weights never change, so the "before" of a forget reuses what
 * training's evaluation or the previous forget's "after" already computed, instead of running
 * the model again — also when the erasure ledger has since taken samples out of the set.
 */
export class OutputMemo {
  readonly probs: Float32Array;
  readonly chosen: Int32Array;
  readonly known: Uint8Array;

  constructor(
    readonly size: number,
    readonly classes: number,
    readonly topK: number,
  ) {
    this.probs = new Float32Array(size * classes);
    this.chosen = new Int32Array(size * topK);
    this.known = new Uint8Array(size);
  }

  /** A memo with a slot for every original index of `ds`. */
  static for(ds: Dataset, classes: number, topK: number): OutputMemo {
    return new OutputMemo(slotsFor(ds), classes, topK);
  }

  /** Positions of `ds` (of `positions`) whose sample is not measured yet, in order. */
  missing(ds: Dataset, positions: Int32Array): Int32Array {
    return positions.filter((p) => !this.known[ds.indices[p]!]);
  }

  /** Records row `row` of a batch's softmax and chosen experts as the outputs of `slot`. */
  record(slot: number, probs: Float32Array, chosen: Int32Array, row: number): void {
    const { classes, topK } = this;
    this.probs.set(probs.subarray(row * classes, (row + 1) * classes), slot * classes);
    this.chosen.set(chosen.subarray(row * topK, (row + 1) * topK), slot * topK);
    this.known[slot] = 1;
  }

  count(): number {
    return this.known.reduce((n, k) => n + k, 0);
  }

  encode(): Uint8Array {
    const header = new Int32Array([MEMO_VERSION, this.size, this.classes, this.topK]);
    const parts = [header, this.probs, this.chosen, this.known].map(
      (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
    );
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  /**
   * The memo in `bytes`, with at least `minSize` slots, if it has this shape; undefined for any
   * other (a stale layout, or bytes that are not a memo).
   */
  static decode(
    bytes: Uint8Array,
    minSize: number,
    classes: number,
    topK: number,
  ): OutputMemo | undefined {
    if (bytes.byteLength < 16) return undefined;
    const copy = bytes.slice();
    const [version, size, storedClasses, storedTopK] = new Int32Array(copy.buffer, 0, 4);
    if (version !== MEMO_VERSION || storedClasses !== classes || storedTopK !== topK) {
      return undefined;
    }
    const stored = new OutputMemo(size!, classes, topK);
    const expected =
      16 + stored.probs.byteLength + stored.chosen.byteLength + stored.known.byteLength;
    if (bytes.byteLength !== expected) return undefined;
    const memo = size! >= minSize ? stored : new OutputMemo(minSize, classes, topK);
    let offset = 16;
    memo.probs.set(new Float32Array(copy.buffer, offset, stored.probs.length));
    offset += stored.probs.byteLength;
    memo.chosen.set(new Int32Array(copy.buffer, offset, stored.chosen.length));
    offset += stored.chosen.byteLength;
    memo.known.set(copy.subarray(offset));
    return memo;
  }
}

const MEMO_VERSION = 1;
const PREFIX = 'cache/outputs/';

export interface OutputMemos {
  /** Names the weights and the data: outputs are reused only for exactly these. */
  key: string;
  train: OutputMemo;
  test: OutputMemo;
}

/** The weights a manifest names: part name (router, expert/i) → sha256 of its object. */
export function weightHashes(manifest: Manifest): Record<string, string> {
  return Object.fromEntries(
    Object.entries(manifest.objects)
      .filter(([name]) => name === 'router' || name.startsWith('expert/'))
      .map(([name, ref]) => [name, ref.sha256]),
  );
}

/**
 * The key of a set of weights (part name → sha256) on a dataset: the same weights on the same
 * sample (dataset name, split, original index) give the same outputs, whatever subset of the
 * dataset a run holds.
 */
export function outputsKey(weights: Record<string, string>, train: Dataset, test: Dataset): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(weights).sort()) hash.update(`${name}=${weights[name]}\n`);
  for (const ds of [train, test]) hash.update(`${ds.name}:${ds.split}\n`);
  return hash.digest('hex');
}

/** Slots a memo of `ds` needs: one per original index up to the largest it holds. */
function slotsFor(ds: Dataset): number {
  return ds.indices.reduce((n, i) => Math.max(n, i + 1), 0);
}

/** The stored memos of `key`, or empty ones (nothing stored, or stored in another shape). */
export async function loadOutputMemos(
  store: ObjectStore,
  key: string,
  data: { train: Dataset; test: Dataset },
  shape: { classes: number; topK: number },
): Promise<OutputMemos> {
  const read = async (split: 'train' | 'test'): Promise<OutputMemo> => {
    const size = slotsFor(data[split]);
    const bytes = await store.get(`${PREFIX}${key}/${split}`).catch(() => undefined);
    return (
      (bytes && OutputMemo.decode(bytes, size, shape.classes, shape.topK)) ??
      new OutputMemo(size, shape.classes, shape.topK)
    );
  };
  return { key, train: await read('train'), test: await read('test') };
}

/** The samples a measurement runs the model on, and how many a "before" finds memoised. */
export interface MeasuredOutputs {
  measuredSamples: number;
  measuredBeforeReused: number;
}

/**
 * What a measurement of `trainPositions` and the whole test split would cost the "before":
 * the samples the store's memo of these weights (`key`) does not hold yet.
 */
export async function memoCoverage(
  store: ObjectStore,
  key: string,
  data: { train: Dataset; test: Dataset },
  shape: { classes: number; topK: number },
  trainPositions: Int32Array,
): Promise<MeasuredOutputs> {
  const memos = await loadOutputMemos(store, key, data, shape);
  const testPositions = Int32Array.from({ length: data.test.size }, (_, i) => i);
  const measuredSamples = trainPositions.length + data.test.size;
  const missing =
    memos.train.missing(data.train, trainPositions).length +
    memos.test.missing(data.test, testPositions).length;
  return { measuredSamples, measuredBeforeReused: measuredSamples - missing };
}

/** Stores memos (each put is atomic); a cache, so callers may ignore a failure. */
export async function saveOutputMemos(store: ObjectStore, memos: OutputMemos): Promise<void> {
  await store.put(`${PREFIX}${memos.key}/train`, memos.train.encode());
  await store.put(`${PREFIX}${memos.key}/test`, memos.test.encode());
}

/**
 * Deletes every memo except `keep`'s: outputs of superseded weights on forgotten samples are
 * evidence about those samples, and nothing reads them again.
 */
export async function pruneOutputMemos(store: ObjectStore, keep: string): Promise<void> {
  for (const { key } of await store.list(PREFIX)) {
    if (!key.startsWith(`${PREFIX}${keep}/`)) await store.delete(key);
  }
}
