import { IntegrityError, type JsonValue, type Manifest } from '@lethe/store';
import { z } from 'zod';

/** The manifest attribute holding the training record of the model the manifest names. */
export const TRAINING_ATTRIBUTE = 'training';

const objectRef = z.object({
  key: z.string(),
  sha256: z.string(),
  size: z.number(),
  kind: z.string(),
});

/** A sisa model's layout object and the recipe an exact replay must repeat (libs/sisa). */
const sisaRecord = z.object({
  layout: objectRef,
  shards: z.number().int().positive(),
  slices: z.number().int().positive(),
  assignment: z.enum(['uniform', 'class-balanced']),
  epochsPerSlice: z.number().int().positive(),
  routerEpochs: z.number().int().nonnegative(),
  // Recorded since the router's training share became a setting; all samples before.
  routerFraction: z.number().default(1),
  batchSize: z.number().int().positive(),
  learningRate: z.number(),
  weightDecay: z.number(),
  /** lineage[shard][slice]: the checkpoint the current model's shard model descends through. */
  lineage: z.array(z.array(z.string())),
  /** Shard training speed last measured (by the training or a replay), for replay estimates. */
  rate: z
    .object({
      sampleEpochsPerSecond: z.number(),
      routerSeconds: z.number(),
      source: z.enum(['training', 'replay']),
      measuredAt: z.string(),
    })
    .optional(),
});

export type SisaTrainingRecord = z.infer<typeof sisaRecord>;

const epochRecord = z.looseObject({
  epoch: z.number(),
  loss: z.number(),
  accuracy: z.number(),
  seconds: z.number().optional(),
});

/**
 * How the stored model was trained: written by every training (CLI, coordinator, sisa) and
 * read through `readTrainingRecord` alone. Fields past the first four are optional because
 * models stored by earlier versions lack them; unknown fields are kept for newer writers.
 */
export const trainingRecordSchema = z.looseObject({
  mode: z.enum(['joint', 'sisa']),
  dataset: z.string(),
  limit: z.number().int().positive().nullable().default(null),
  seed: z.number().int().default(0),
  datasetName: z.string().optional(),
  trainSize: z.number().int().nonnegative().optional(),
  epochs: z.number().int().positive().optional(),
  batchSize: z.number().int().positive().optional(),
  learningRate: z.number().optional(),
  schedule: z.enum(['constant', 'cosine', 'one-cycle']).optional(),
  weightDecay: z.number().optional(),
  augment: z.boolean().optional(),
  balanceWeight: z.number().optional(),
  routerNoise: z.number().optional(),
  specializeWeight: z.number().optional(),
  engine: z.string().optional(),
  seconds: z.number().optional(),
  testAccuracy: z.number().nullable().optional(),
  history: z.array(epochRecord).optional(),
  /** The routing health on the test split (libs/metrics RoutingHealth), or null. */
  routingHealth: z.custom<JsonValue>().nullable().optional(),
  /** The erasure ledger revision this training honoured (libs/ledger's stamp). */
  ledger: z.custom<JsonValue>().optional(),
  /** Which subjects the training set holds (libs/ledger's subjects record). */
  subjects: z.custom<JsonValue>().optional(),
  /** Trained through a coordinator: the workers, its job, and the epoch a resume started at. */
  distributed: z
    .looseObject({
      workers: z.number().optional(),
      job: z.string().optional(),
      requestId: z.string().optional(),
      fingerprint: z.string().optional(),
      resumedFromEpoch: z.number().int().nonnegative().optional(),
    })
    .optional(),
  sisa: sisaRecord.optional(),
});

export type TrainingRecord = z.infer<typeof trainingRecordSchema>;

/**
 * The training record of the model `manifest` names; undefined when it has none (no model yet).
 * @throws IntegrityError when the record is malformed: the manifest is hash-checked, so a bad
 *   record is damage or a writer's bug, never something to guess around.
 */
export function readTrainingRecord(manifest: Manifest | undefined): TrainingRecord | undefined {
  const value = manifest?.attributes[TRAINING_ATTRIBUTE];
  if (value === undefined) return undefined;
  const parsed = trainingRecordSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IntegrityError(
      `manifest revision ${manifest?.revision}`,
      `malformed training record: ${issue?.path.join('.') || 'record'}: ${issue?.message}`,
    );
  }
  return parsed.data;
}

/** Images per second of the recorded training (all epochs), or undefined when not recorded. */
export function recordedTrainingRate(record: TrainingRecord | undefined): number | undefined {
  if (!record?.trainSize || !record.history?.length) return undefined;
  const seconds = record.history.reduce((n, h) => n + (h.seconds ?? 0), 0);
  return seconds > 0 ? (record.trainSize * record.history.length) / seconds : undefined;
}
