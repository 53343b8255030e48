import { createHash } from 'node:crypto';
import {
  getVerified,
  NotFoundError,
  type ObjectRef,
  type ObjectStore,
  putContent,
} from '@lethe/store';

/** What a shard model's training depends on besides its samples. */
export interface ShardRecipe {
  preset: string;
  numClasses: number;
  inputShape: [number, number, number];
  seed: number;
  epochsPerSlice: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
}

/** A stored shard checkpoint: the expert after training on slices 0..slice. */
export interface CheckpointRecord {
  lineage: string;
  shard: number;
  slice: number;
  samples: number;
  /** The original indices of every sample in slices 0..slice (kind `lineage`). */
  ids: ObjectRef;
  weights: ObjectRef;
  optimizer: ObjectRef;
}

/**
 * The address of a checkpoint: a hash of the recipe, the shard and the set of samples it was
 * trained on. An unchanged prefix has an unchanged address, so it is found and reused, never
 * trained again; a prefix that held a forgotten sample has an address nothing uses any more.
 */
export function lineageHash(
  recipe: ShardRecipe & { trainer?: string },
  shard: number,
  slice: number,
  indices: readonly number[],
): string {
  return createHash('sha256')
    .update(JSON.stringify({ recipe, shard, slice, indices }))
    .digest('hex');
}

const recordKey = (lineage: string): string => `sisa/checkpoints/${lineage}.json`;

export async function readCheckpoint(
  store: ObjectStore,
  lineage: string,
): Promise<CheckpointRecord | undefined> {
  try {
    const bytes = await store.get(recordKey(lineage));
    return JSON.parse(new TextDecoder().decode(bytes)) as CheckpointRecord;
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

export async function writeCheckpoint(
  store: ObjectStore,
  record: Omit<CheckpointRecord, 'ids' | 'weights' | 'optimizer'>,
  content: { indices: readonly number[]; weights: ObjectRef; optimizer: ObjectRef },
): Promise<CheckpointRecord> {
  const full: CheckpointRecord = {
    ...record,
    ids: await putContent(store, new TextEncoder().encode(JSON.stringify(content.indices)), {
      kind: 'lineage',
    }),
    weights: content.weights,
    optimizer: content.optimizer,
  };
  // Written last: a record exists only once everything it names does.
  await store.put(recordKey(record.lineage), new TextEncoder().encode(JSON.stringify(full)));
  return full;
}

export async function readLineageIndices(
  store: ObjectStore,
  record: CheckpointRecord,
): Promise<number[]> {
  return JSON.parse(new TextDecoder().decode(await getVerified(store, record.ids))) as number[];
}

/** Every checkpoint record in the store. */
export async function listCheckpoints(store: ObjectStore): Promise<CheckpointRecord[]> {
  const records: CheckpointRecord[] = [];
  for (const { key } of await store.list('sisa/checkpoints/')) {
    if (!key.endsWith('.json')) continue;
    records.push(JSON.parse(new TextDecoder().decode(await store.get(key))) as CheckpointRecord);
  }
  return records;
}

/** Removes a checkpoint: its record first (so nothing points at missing objects), then its objects. */
export async function deleteCheckpoint(
  store: ObjectStore,
  record: CheckpointRecord,
): Promise<void> {
  await store.delete(recordKey(record.lineage));
  // The shard model's logits on the training set go too: they were computed from its weights.
  for (const { key } of await store.list(`sisa/logits/${record.lineage}/`)) await store.delete(key);
  for (const ref of [record.weights, record.optimizer, record.ids]) {
    await store.delete(ref.key).catch((error: unknown) => {
      if (!(error instanceof NotFoundError)) throw error;
    });
  }
}
