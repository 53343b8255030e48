import { readTrainingRecord } from '@lethe/model';
import { ManifestStore, type ObjectStore } from '@lethe/store';
import { CliError } from '../terminal/errors';

/** The `limit` and `seed` the stored model was trained with. */
export async function storedTrainingSubset(
  store: ObjectStore,
): Promise<{ limit?: number; seed: number }> {
  const training = readTrainingRecord(await new ManifestStore(store).read());
  return {
    ...(training?.limit ? { limit: training.limit } : {}),
    seed: training?.seed ?? 0,
  };
}

/**
 * Fails with one line when the store holds no trained model; checked before the engine starts,
 * so that a command given the wrong store names no engine.
 */
export async function requireTrainedModel(store: ObjectStore): Promise<void> {
  if (!(await new ManifestStore(store).read())?.attributes['model']) {
    throw new CliError(`no trained model in ${store.describe()} (train one with npx lethe train)`);
  }
}
