import { type Dataset, openDataset, type Split } from '@lethe/data';
import { type RoutingHealth, routingHealth } from '@lethe/metrics';
import { type ModelCard, readTrainingRecord, type TrainingRecord } from '@lethe/model';
import { type Manifest, ManifestStore, type ObjectStore } from '@lethe/store';
import { isClassReceipt, readReceipt } from '@lethe/unlearning';

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
    // A model without its training record cannot be retrained, replayed or measured: it is
    // no model to this coordinator, as before its first training.
    const training = readTrainingRecord(manifest);
    if (!manifest || !card || !training) return undefined;
    return { manifest, card, training };
  }

  /**
   * The routing health of the current model on its test split: from the receipt of the class
   * forget that published it (its "after" routing), else from its training record. Undefined
   * when neither measured it (no model, a sisa model, a model trained before it was recorded).
   */
  async routingHealth(current: CurrentModel): Promise<RoutingHealth | undefined> {
    const forgotten = (current.manifest.attributes['forgotten'] ?? []) as { requestId: string }[];
    const last = forgotten.at(-1);
    if (last) {
      const receipt = await readReceipt(this.store, last.requestId);
      // `forgotten` lists class forgets; only their receipts measure routing.
      const routing =
        receipt && isClassReceipt(receipt) ? receipt.metrics.after.routingTest : undefined;
      if (routing && routing.some((row) => row.some((n) => n > 0))) {
        return routingHealth(routing, current.card.config.topK);
      }
    }
    return (current.training.routingHealth ?? undefined) as RoutingHealth | undefined;
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
