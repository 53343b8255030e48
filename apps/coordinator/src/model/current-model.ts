import { type Dataset, openDataset, type Split } from '@lethe/data';
import { type ModelCard } from '@lethe/model';
import { type Manifest, ManifestStore, type ObjectStore } from '@lethe/store';

/** The stored training record (manifest attribute `training`) the coordinator relies on. */
export interface TrainingRecord {
  mode: 'joint' | 'sisa';
  dataset: string;
  limit: number | null;
  seed: number;
  [key: string]: unknown;
}

/** The model the current manifest revision names, without its weights. */
export interface CurrentModel {
  manifest: Manifest;
  card: ModelCard;
  training: TrainingRecord;
}

/**
 * Reads the current model from the store, and keeps datasets opened on the coordinator (the
 * router needs the images; workers read their own copy).
 */
export class ModelState {
  private readonly datasets = new Map<string, Promise<Dataset>>();

  constructor(readonly store: ObjectStore) {}

  async current(): Promise<CurrentModel | undefined> {
    const manifest = await new ManifestStore(this.store).read();
    const card = manifest?.attributes['model'] as unknown as ModelCard | undefined;
    if (!manifest || !card) return undefined;
    const training = (manifest.attributes['training'] ?? {}) as unknown as TrainingRecord;
    return { manifest, card, training };
  }

  /** Opens a dataset split once per process; a failed open is retried next time. */
  dataset(uri: string, split: Split): Promise<Dataset> {
    const key = `${split}\n${uri}`;
    let opened = this.datasets.get(key);
    if (!opened) {
      opened = openDataset(uri, split);
      this.datasets.set(key, opened);
      opened.catch(() => this.datasets.delete(key));
    }
    return opened;
  }
}
