import { createRng, type Dataset, deriveSeed, subset } from '@lethe/data';
import { ManifestStore, type ObjectStore } from '@lethe/store';

/**
 * The seeded subset `lethe train --limit N` trains on. Forgetting must see exactly the training
 * set the model saw (the oracle retrains on it), so `lethe forget` reapplies it from the stored
 * training record. Sample ids are kept: `subset` preserves original indices.
 */
export function limitTrainingSet(train: Dataset, limit: number | undefined, seed: number): Dataset {
  if (!limit || limit >= train.size) return train;
  const all = Int32Array.from({ length: train.size }, (_, i) => i);
  const picked = createRng(deriveSeed(seed, 'train-subset')).shuffle(all).slice(0, limit).sort();
  return subset(train, picked);
}

/** The `limit` and `seed` the stored model was trained with. */
export async function storedTrainingSubset(
  store: ObjectStore,
): Promise<{ limit?: number; seed: number }> {
  const training = (await new ManifestStore(store).read())?.attributes['training'] as
    { limit?: number | null; seed?: number } | undefined;
  return {
    ...(typeof training?.limit === 'number' ? { limit: training.limit } : {}),
    seed: training?.seed ?? 0,
  };
}
