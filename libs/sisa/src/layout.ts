import { createHash } from 'node:crypto';
import { type Dataset, formatSampleId } from '@lethe/data';

export type ShardAssignment = 'uniform' | 'class-balanced';

/**
 * Which shard and slice every training sample belongs to, fixed when the model is trained.
 * Forgetting removes samples from their slots and never moves the others: that is what makes a
 * replay equal to training on the remaining data with the same layout.
 */
export interface SisaLayout {
  shards: number;
  slices: number;
  assignment: ShardAssignment;
  seed: number;
  /** slots[shard][slice]: original dataset indices, increasing. */
  slots: number[][][];
}

/** A stable pseudo-random key per (seed, sample): the order samples are dealt in. */
function sampleKey(seed: number, id: string): string {
  return createHash('sha256').update(`${seed}\n${id}`).digest('hex');
}

/**
 * Splits the training set into `shards` shards of `slices` slices. `uniform` deals samples in a
 * seeded pseudo-random order to shards in turn; `class-balanced` does the same within each class,
 * so every shard — and every slice of it — sees every class in proportion.
 */
export function planLayout(
  train: Dataset,
  options: { shards: number; slices: number; assignment: ShardAssignment; seed: number },
): SisaLayout {
  const { shards, slices, assignment, seed } = options;
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`shards must be ≥ 1, got ${shards}`);
  if (!Number.isInteger(slices) || slices < 1 || slices > 64) {
    throw new Error(`slices must be 1..64, got ${slices}`);
  }
  const groups = new Map<number, { index: number; key: string }[]>();
  for (let p = 0; p < train.size; p++) {
    const group = assignment === 'class-balanced' ? train.labels[p]! : 0;
    const index = train.indices[p]!;
    const entry = { index, key: sampleKey(seed, formatSampleId(train.name, train.split, index)) };
    let members = groups.get(group);
    if (!members) groups.set(group, (members = []));
    members.push(entry);
  }
  const perShard: number[][] = Array.from({ length: shards }, () => []);
  let dealt = 0;
  for (const group of [...groups.keys()].sort((a, b) => a - b)) {
    const members = groups.get(group)!.sort((a, b) => (a.key < b.key ? -1 : 1));
    for (const m of members) perShard[dealt++ % shards]!.push(m.index);
  }
  // A shard's members come class by class when class-balanced, so its slices take every R-th
  // member (each slice sees every class); in a uniform shard, random order, contiguous runs do.
  const sliceOf = (i: number, n: number): number =>
    assignment === 'class-balanced' ? i % slices : Math.floor((i * slices) / n);
  const slots = perShard.map((members) => {
    const bySlice: number[][] = Array.from({ length: slices }, () => []);
    members.forEach((index, i) => bySlice[sliceOf(i, members.length)]!.push(index));
    return bySlice.map((s) => s.sort((a, b) => a - b));
  });
  return { shards, slices, assignment, seed, slots };
}

/** Where each sample sits: original index → shard and slice. */
export function slotsByIndex(layout: SisaLayout): Map<number, { shard: number; slice: number }> {
  const map = new Map<number, { shard: number; slice: number }>();
  layout.slots.forEach((slices, shard) =>
    slices.forEach((indices, slice) => indices.forEach((i) => map.set(i, { shard, slice }))),
  );
  return map;
}

/** The same layout without some samples (by original index). */
export function withoutSamples(layout: SisaLayout, indices: ReadonlySet<number>): SisaLayout {
  return {
    ...layout,
    slots: layout.slots.map((shard) => shard.map((slice) => slice.filter((i) => !indices.has(i)))),
  };
}

/** Samples in slices 0..slice of a shard: what the checkpoint after `slice` has seen. */
export function prefix(layout: SisaLayout, shard: number, slice: number): number[] {
  return layout.slots[shard]!.slice(0, slice + 1)
    .flat()
    .sort((a, b) => a - b);
}
