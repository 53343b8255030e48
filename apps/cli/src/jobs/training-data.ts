import { ManifestStore, type ObjectStore } from '@lethe/store';

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
