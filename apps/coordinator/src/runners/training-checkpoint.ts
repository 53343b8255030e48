import { createHash } from 'node:crypto';
import { NotFoundError, type ObjectRef, type ObjectStore } from '@lethe/store';
import { z } from 'zod';

/**
 * A joint training's state at the end of an epoch, stored under its request id so that a job
 * interrupted by a restart continues from it instead of from epoch 1: the router's weights and
 * optimizer state, each expert's checkpoint on the workers (weights, optimizer state, last step
 * id), the routing lineage so far and the epochs' summaries. The data order, augmentation,
 * router noise and learning rate are functions of (seed, epoch, step), so the epoch number is
 * all the position a resumed run needs. Written whole with one put (atomic in every store);
 * deleted once the model is published.
 */

const ObjectRefSchema = z.object({
  key: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().min(0),
  kind: z.string().min(1),
});

export const TrainingCheckpointSchema = z.object({
  schema: z.literal(1),
  requestId: z.string(),
  /** The job that wrote it (a resumed job keeps its id; a resubmitted request gets a new one). */
  jobId: z.string(),
  /** requestFingerprint of the normalised request: a checkpoint resumes only its own request. */
  fingerprint: z.string().regex(/^[0-9a-f]{64}$/),
  /** Epochs finished: the run resumes at this 0-based epoch. */
  epoch: z.number().int().min(1),
  epochs: z.number().int().min(1),
  stepsPerEpoch: z.number().int().min(1),
  /** Samples trained on, and the erasure ledger they were chosen under. */
  trainSize: z.number().int().min(1),
  ledgerSha256: z.string().nullable(),
  router: ObjectRefSchema,
  /** libs/model's encoded AdamW state of the router's variables. */
  routerOptimizer: ObjectRefSchema,
  weightDecay: z.number().min(0),
  noiseStep: z.number().int().min(0),
  experts: z.array(
    z.object({
      expert: z.number().int().min(0),
      weights: ObjectRefSchema,
      optimizerState: ObjectRefSchema,
      lastStepId: z.number().int().min(0),
    }),
  ),
  lineage: ObjectRefSchema,
  history: z.array(
    z.object({
      epoch: z.number().int(),
      loss: z.number(),
      accuracy: z.number(),
      seconds: z.number(),
    }),
  ),
  /** Training seconds before this checkpoint (over every run that led to it). */
  seconds: z.number().min(0),
  writtenAt: z.string(),
});

export type TrainingCheckpoint = z.infer<typeof TrainingCheckpointSchema>;

/** Where a training's checkpoint lives: by request id, or by job id when it has none. */
export function trainingCheckpointKey(requestId: string, jobId: string): string {
  return requestId
    ? `training/checkpoints/request/${requestId}.json`
    : `training/checkpoints/job/${jobId}.json`;
}

/** A request's identity for its checkpoint: SHA-256 of its JSON with keys sorted. */
export function requestFingerprint(request: object): string {
  const canonical = (value: unknown): unknown =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.keys(value)
            .sort()
            .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
        )
      : value;
  return createHash('sha256')
    .update(JSON.stringify(canonical(request)))
    .digest('hex');
}

/**
 * The checkpoint stored at `key`, or undefined when there is none.
 * @throws Error naming the key when it is stored but not a valid checkpoint.
 */
export async function readTrainingCheckpoint(
  store: ObjectStore,
  key: string,
): Promise<TrainingCheckpoint | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await store.get(key);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error(`training checkpoint ${key} is not valid JSON`);
  }
  const parsed = TrainingCheckpointSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(
      `training checkpoint ${key} is malformed: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  return parsed.data;
}

/** Stores `checkpoint` at `key` in one put, replacing the previous one. */
export async function writeTrainingCheckpoint(
  store: ObjectStore,
  key: string,
  checkpoint: TrainingCheckpoint,
): Promise<void> {
  const valid = TrainingCheckpointSchema.parse(checkpoint);
  await store.put(key, new TextEncoder().encode(JSON.stringify(valid)));
}

/** The objects a checkpoint names. */
export function checkpointObjects(checkpoint: TrainingCheckpoint): ObjectRef[] {
  return [
    checkpoint.router,
    checkpoint.routerOptimizer,
    checkpoint.lineage,
    ...checkpoint.experts.flatMap((e) => [e.weights, e.optimizerState]),
  ];
}

/**
 * Deletes the objects of `checkpoint` that nothing in `keep` (object keys: a newer checkpoint's,
 * the published manifest's) still names. Best effort: a leftover object is garbage, not harm.
 */
export async function deleteCheckpointObjects(
  store: ObjectStore,
  checkpoint: TrainingCheckpoint,
  keep: ReadonlySet<string>,
): Promise<number> {
  let deleted = 0;
  for (const key of new Set(checkpointObjects(checkpoint).map((ref) => ref.key))) {
    if (keep.has(key)) continue;
    await store.delete(key).then(
      () => deleted++,
      () => undefined,
    );
  }
  return deleted;
}
