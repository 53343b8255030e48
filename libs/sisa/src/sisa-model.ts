import { type ChannelStats, type Dataset, parseSampleId } from '@lethe/data';
import {
  appendErasures,
  buildRoster,
  erasedOf,
  type Erased,
  type LedgerStamp,
  honourLedger,
  isSisaReceipt,
  LEDGER_OBJECT,
  describeHonoured,
  readLedger,
  readReceipt,
  receiptKind,
  receiptObjectName,
  revisionHonouring,
  ROSTER_OBJECT,
  type SisaReceipt,
  storeReceipt,
  storeRoster,
  type SubjectTable,
  subjectsRecord,
} from '@lethe/ledger';
import {
  type ModelCard,
  type MoEConfig,
  publishModel,
  readTrainingRecord,
  type SisaTrainingRecord,
} from '@lethe/model';
import {
  getVerified,
  type JsonValue,
  type Manifest,
  ManifestStore,
  type ObjectRef,
  type ObjectStore,
  putContent,
  sha256Hex,
} from '@lethe/store';
import {
  type CheckpointRecord,
  deleteCheckpoint,
  listCheckpoints,
  readCheckpoint,
  readLineageIndices,
} from './checkpoints';
import {
  planLayout,
  prefix,
  type ShardAssignment,
  type SisaLayout,
  slotsByIndex,
  withoutSamples,
} from './layout';
import {
  type ShardTrainer,
  type SisaProgress,
  type SisaRecipe,
  type SisaTrainingResult,
  trainSisa,
} from './sisa-training';

/** The manifest attribute `training.sisa`: everything a replay needs. */
/** The sisa part of the training record; its schema is libs/model's, with the record's. */
export type SisaRecord = SisaTrainingRecord;
/** Shard training speed last measured, kept in the sisa record for replay estimates. */
export type SisaRate = NonNullable<SisaRecord['rate']>;

export interface SisaTrainOptions {
  dataset: string;
  /** The seeded subset size the training set was cut to, recorded so forgetting reapplies it. */
  limit?: number;
  config: MoEConfig;
  classes: string[];
  normalise: ChannelStats;
  slices: number;
  assignment: ShardAssignment;
  epochsPerSlice: number;
  routerEpochs: number;
  /** Share of the samples the router trains on (see SisaRecipe.routerFraction). Default 1. */
  routerFraction?: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  onProgress?: (p: SisaProgress) => void;
  /** Where shard models train (e.g. on workers); default in this process. */
  trainer?: ShardTrainer;
  /** The dataset's sample → subject table, recorded with the model (its roster). */
  subjects?: SubjectTable;
  onStatus?: (message: string) => void;
}

const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const decode = <T>(bytes: Uint8Array): T => JSON.parse(new TextDecoder().decode(bytes)) as T;

function recipeOf(
  config: MoEConfig,
  normalise: ChannelStats,
  sisa: Omit<SisaRecord, 'layout' | 'lineage' | 'shards' | 'slices' | 'assignment'>,
): SisaRecipe {
  return {
    config,
    normalise,
    epochsPerSlice: sisa.epochsPerSlice,
    routerEpochs: sisa.routerEpochs,
    routerFraction: sisa.routerFraction ?? 1,
    batchSize: sisa.batchSize,
    learningRate: sisa.learningRate,
    weightDecay: sisa.weightDecay,
  };
}

async function publishSisa(
  store: ObjectStore,
  card: ModelCard,
  layout: SisaLayout,
  options: Omit<SisaRecord, 'layout' | 'lineage' | 'shards' | 'slices' | 'assignment'> & {
    dataset: string;
    limit?: number | null;
  },
  result: Awaited<ReturnType<typeof trainSisa>>,
  extra: {
    objects?: Record<string, ObjectRef>;
    attributes?: Record<string, JsonValue>;
    /** More fields of the training record (the ledger honoured, the subject table). */
    training?: Record<string, JsonValue>;
    expectRevision?: number;
    /** The rate measured by this training or replay (kept from before when it trained no shard). */
    rate?: SisaRate;
  } = {},
): Promise<Manifest> {
  const layoutRef = await putContent(store, encode(layout), { kind: 'sisa-layout' });
  const refs: Record<string, ObjectRef> = {
    router: await putContent(store, result.router, { kind: 'router' }),
  };
  for (const shard of result.shards)
    refs[`expert/${shard.shard}`] = shard.checkpoints.at(-1)!.weights;
  const sisa: SisaRecord = {
    layout: layoutRef,
    shards: layout.shards,
    slices: layout.slices,
    assignment: layout.assignment,
    epochsPerSlice: options.epochsPerSlice,
    routerEpochs: options.routerEpochs,
    routerFraction: options.routerFraction ?? 1,
    batchSize: options.batchSize,
    learningRate: options.learningRate,
    weightDecay: options.weightDecay,
    lineage: result.shards.map((s) => s.checkpoints.map((c) => c.lineage)),
    ...(extra.rate ? { rate: extra.rate } : {}),
  };
  return publishModel(store, card, { ...refs, ...(extra.objects ?? {}) } as never, {
    attributes: {
      training: {
        mode: 'sisa',
        dataset: options.dataset,
        limit: options.limit ?? null,
        seed: card.config.seed,
        sisa: sisa as unknown as JsonValue,
        ...(extra.training ?? {}),
      },
      ...(extra.attributes ?? {}),
    },
    ...(extra.expectRevision === undefined ? {} : { expectRevision: extra.expectRevision }),
  });
}

/** Trains a sisa model (one expert per shard, then the router) and publishes it. */
export async function trainSisaModel(
  store: ObjectStore,
  train: Dataset,
  options: SisaTrainOptions,
): Promise<{ manifest: Manifest; layout: SisaLayout; seconds: number }> {
  const started = performance.now();
  // Everything the store's erasure ledger holds stays out of the layout, so out of every shard
  // and of the router. Training still addresses samples in `train`, where a ShardTrainer made
  // for it looks them up.
  const { train: kept, honoured } = await honourLedger(store, train, options.subjects);
  options.onStatus?.(describeHonoured(honoured));
  const layout = planLayout(kept, {
    shards: options.config.experts,
    slices: options.slices,
    assignment: options.assignment,
    seed: options.config.seed,
  });
  const settings = { ...options, routerFraction: options.routerFraction ?? 1 };
  const recipe = recipeOf(options.config, options.normalise, settings);
  const trainingStarted = performance.now();
  const result = await trainSisa(store, train, layout, recipe, options.onProgress, options.trainer);
  const rate = measureRate(
    layout,
    recipe,
    result,
    (performance.now() - trainingStarted) / 1000,
    'training',
  );
  const card: ModelCard = {
    config: options.config,
    classes: options.classes,
    normalisation: { mean: [...options.normalise.mean], std: [...options.normalise.std] },
  };
  const trained = buildRoster(kept, options.subjects);
  const roster = await storeRoster(store, trained);
  const manifest = await publishSisa(store, card, layout, settings, result, {
    objects: { [ROSTER_OBJECT]: roster },
    attributes: { forgotten: [], sisaForgotten: [] },
    training: {
      ledger: honoured as unknown as JsonValue,
      subjects: subjectsRecord(trained),
    },
    expectRevision: await revisionHonouring(store, honoured),
    ...(rate ? { rate } : {}),
  });
  return { manifest, layout, seconds: (performance.now() - started) / 1000 };
}

/** Shard work (samples × epochs) a set of slice trainings does: each slice trains on its prefix. */
function shardWork(
  layout: SisaLayout,
  epochsPerSlice: number,
  shard: number,
  slices: readonly number[],
): number {
  return slices.reduce((sum, r) => sum + prefix(layout, shard, r).length * epochsPerSlice, 0);
}

/** The rate a training or replay ran at, or undefined when it trained no shard. */
function measureRate(
  layout: SisaLayout,
  recipe: SisaRecipe,
  result: SisaTrainingResult,
  wallSeconds: number,
  source: SisaRate['source'],
): SisaRate | undefined {
  const work = result.shards.reduce(
    (sum, r) => sum + shardWork(layout, recipe.epochsPerSlice, r.shard, r.trained),
    0,
  );
  const shardSeconds = wallSeconds - result.routerSeconds;
  if (work === 0 || !(shardSeconds > 0)) return undefined;
  return {
    sampleEpochsPerSecond: work / shardSeconds,
    routerSeconds: result.routerSeconds,
    source,
    measuredAt: new Date().toISOString(),
  };
}

// A sisa forget request's receipt (what was replayed, from which checkpoint, and the hashes):
// its schema, writer and reader are @lethe/ledger's, shared with the other kinds of receipt.
export type { SisaReceipt } from '@lethe/ledger';

export class SisaRequestError extends Error {
  constructor(
    message: string,
    readonly code: 'invalid-argument' | 'not-found' | 'failed-precondition' | 'already-exists',
  ) {
    super(message);
    this.name = 'SisaRequestError';
  }
}

export interface LoadedSisa {
  manifest: Manifest;
  card: ModelCard;
  sisa: SisaRecord;
  layout: SisaLayout;
  dataset: string;
  limit: number | null;
}

export async function loadSisa(store: ObjectStore): Promise<LoadedSisa> {
  const manifest = await new ManifestStore(store).read();
  const card = manifest?.attributes['model'] as unknown as ModelCard | undefined;
  const training = readTrainingRecord(manifest);
  if (!manifest || !card)
    throw new SisaRequestError('no trained model in the store', 'failed-precondition');
  if (training?.mode !== 'sisa' || !training.sisa) {
    throw new SisaRequestError(
      'the stored model was trained in joint mode; exact forgetting needs --mode sisa',
      'failed-precondition',
    );
  }
  const layout = decode<SisaLayout>(await getVerified(store, training.sisa.layout));
  return {
    manifest,
    card,
    sisa: training.sisa,
    layout,
    dataset: training.dataset,
    limit: training.limit,
  };
}

/** One forget request: a caller-chosen id and the sample ids to forget. */
export interface SisaForgetRequest {
  requestId: string;
  sampleIds: readonly string[];
  /** The data subjects `sampleIds` are the samples of (recorded in the receipt and ledger). */
  subjects?: readonly string[];
}

/**
 * Forgets training samples exactly: each shard holding one replays from the checkpoint before
 * the first slice that held it, without it (earlier slices and untouched shards are reused from
 * the store); the router is retrained on the remaining data. The new model, its lineage and the
 * receipt are published in one manifest revision; then every stored checkpoint whose lineage
 * holds a forgotten sample is deleted. Re-sending a completed request id returns its receipt
 * (and finishes the deletion if a crash interrupted it). A batch of one for `replayBatch`.
 */
export async function forgetSamples(
  store: ObjectStore,
  train: Dataset,
  request: SisaForgetRequest,
  onProgress?: (p: SisaProgress) => void,
  trainer?: ShardTrainer,
): Promise<SisaReceipt> {
  const { outcomes } = await replayBatch(store, train, [request], onProgress, trainer);
  const outcome = outcomes[0]!;
  if ('error' in outcome) throw outcome.error;
  return outcome.receipt;
}

/** What replayBatch did for one request: its receipt, or why it was refused. */
export type SisaBatchOutcome = { receipt: SisaReceipt } | { error: unknown };

/**
 * Forgets the samples of several requests with one replay: one `trainSisa` over the layout
 * without all their samples, one manifest revision publishing every new request's receipt, then
 * the deletion of every checkpoint that held one of them. Each request is validated on its own,
 * as `forgetSamples` does: a bad request is refused (its outcome is the error) and the others go
 * ahead; a request id whose receipt is already published gets that receipt back; the same id
 * twice in the batch with different samples is refused (`already-exists`) after the first.
 * Requests of one batch may name the same sample. A failure of the replay itself (or of loading
 * the model) is thrown, and no request of the batch completes. `replayed` says whether the batch
 * trained anything.
 */
export async function replayBatch(
  store: ObjectStore,
  train: Dataset,
  requests: readonly SisaForgetRequest[],
  onProgress?: (p: SisaProgress) => void,
  trainer?: ShardTrainer,
): Promise<{ outcomes: SisaBatchOutcome[]; replayed: boolean }> {
  const started = performance.now();
  const loaded = await loadSisa(store);
  const { manifest, card, sisa, layout } = loaded;
  const slots = slotsByIndex(layout);
  const alreadyForgotten = allForgottenIndices(manifest);
  const ledger = await readLedger(store, manifest);
  const erased = erasedOf(ledger);
  // A new request's receipt is known only after the replay: until then its outcome is pending.
  const outcomes: (SisaBatchOutcome | { pending: string })[] = [];
  const accepted: {
    requestId: string;
    ids: string[];
    indices: Set<number>;
    subjects: string[];
  }[] = [];
  const inBatch = new Map<string, string>();
  let finishDeletion = false;
  for (const request of requests) {
    const ids = [...new Set(request.sampleIds)].sort();
    const key = JSON.stringify(ids);
    const existing = await readReceipt(store, request.requestId, manifest);
    if (existing) {
      if (!isSisaReceipt(existing) || JSON.stringify(existing.request.sampleIds) !== key) {
        outcomes.push({ error: differentRequest(request.requestId) });
      } else {
        finishDeletion = true;
        outcomes.push({ receipt: existing });
      }
      continue;
    }
    const seen = inBatch.get(request.requestId);
    if (seen !== undefined) {
      // The same request twice in one batch shares the first one's receipt (filled in below).
      outcomes.push(
        seen === key
          ? { pending: request.requestId }
          : { error: differentRequest(request.requestId) },
      );
      continue;
    }
    try {
      const subjects = [...new Set(request.subjects ?? [])].sort();
      checkNotErased(erased, ids, subjects);
      const indices = validateSamples(train, slots, alreadyForgotten, ids);
      inBatch.set(request.requestId, key);
      accepted.push({ requestId: request.requestId, ids, indices, subjects });
      outcomes.push({ pending: request.requestId });
    } catch (error) {
      outcomes.push({ error });
    }
  }
  if (accepted.length === 0) {
    if (finishDeletion) await deleteForgotten(store, alreadyForgotten);
    return { outcomes: outcomes as SisaBatchOutcome[], replayed: false };
  }
  const forgotten = new Set(accepted.flatMap((a) => [...a.indices]));
  const next = withoutSamples(layout, forgotten);
  const recipe = recipeOf(card.config, card.normalisation as ChannelStats, sisa);
  const replayStarted = performance.now();
  const result = await trainSisa(store, train, next, recipe, onProgress, trainer);
  const replaySeconds = (performance.now() - replayStarted) / 1000 - result.routerSeconds;
  const rate =
    measureRate(next, recipe, result, replaySeconds + result.routerSeconds, 'replay') ?? sisa.rate;
  const shards = [];
  for (const report of result.shards) {
    const removed = layout.slots[report.shard]!.flat().filter((i) => forgotten.has(i)).length;
    if (removed === 0) continue;
    const before: string[] = [];
    for (const r of report.trained) {
      const old = await readCheckpoint(store, sisa.lineage[report.shard]![r]!);
      before.push(old?.weights.sha256 ?? '');
    }
    shards.push({
      shard: report.shard,
      slices: layout.slices,
      slicesReplayed: report.trained,
      samplesRemoved: removed,
      restoredCheckpointSha256: report.startedFrom,
      checkpointSha256Before: before,
      checkpointSha256After: report.trained.map((r) => report.checkpoints[r]!.weights.sha256),
    });
  }
  const beforeHashes = partHashes(manifest);
  // The after-hashes are known before publishing: the router and the last checkpoint of each shard.
  const afterHashes = {
    ...beforeHashes,
    router: sha256Hex(result.router),
    ...Object.fromEntries(
      result.shards.map((s) => [`expert/${s.shard}`, s.checkpoints.at(-1)!.weights.sha256]),
    ),
  };
  const checkpointsDeleted = await countForgottenCheckpoints(store, forgotten);
  const requestIds = accepted.map((a) => a.requestId);
  const batch = {
    id: batchId(manifest.revision + 1, requestIds),
    requestIds,
    samples: forgotten.size,
  };
  const createdAt = new Date().toISOString();
  const totalSeconds = (performance.now() - started) / 1000;
  const objects: Record<string, ObjectRef> = {};
  const receipts = new Map<string, SisaReceipt>();
  for (const a of accepted) {
    const receipt: SisaReceipt = {
      schema: 1,
      requestId: a.requestId,
      createdAt,
      mode: 'exact',
      request: {
        kind: 'samples',
        sampleIds: a.ids,
        ...(a.subjects.length > 0 ? { subjects: a.subjects } : {}),
      },
      batch,
      sisa: { shards, routerEpochs: sisa.routerEpochs },
      weights: { before: beforeHashes, after: afterHashes },
      manifest: { before: manifest.revision, after: manifest.revision + 1 },
      checkpointsDeleted,
      timings: { replaySeconds, routerSeconds: result.routerSeconds, totalSeconds },
    };
    receipts.set(a.requestId, receipt);
    objects[receiptObjectName(a.requestId)] = await storeReceipt(store, receipt);
  }
  objects[LEDGER_OBJECT] = await appendErasures(
    store,
    ledger,
    accepted.map((a) => ({
      requestId: a.requestId,
      receipt: objects[receiptObjectName(a.requestId)]!,
      mode: 'exact' as const,
      sampleIds: a.ids,
      subjects: a.subjects,
    })),
  );
  const oldRouter = manifest.objects['router'];
  const published = await publishSisa(
    store,
    card,
    next,
    { ...sisa, dataset: loaded.dataset, limit: loaded.limit },
    result,
    {
      objects,
      training: replayedTraining(manifest, {
        sha256: objects[LEDGER_OBJECT].sha256,
        events: ledger.document.events.length + accepted.length,
        erasures: erased.byRequest.size + accepted.length,
      }),
      attributes: {
        sisaForgotten: [
          ...((manifest.attributes['sisaForgotten'] ?? []) as number[]),
          ...forgotten,
        ] as JsonValue,
      },
      expectRevision: manifest.revision,
      ...(rate ? { rate } : {}),
    },
  );
  await deleteForgotten(
    store,
    finishDeletion ? new Set([...alreadyForgotten, ...forgotten]) : forgotten,
  );
  // The old router was trained on the forgotten samples too.
  if (oldRouter && oldRouter.sha256 !== published.objects['router']?.sha256)
    await store.delete(oldRouter.key);
  return {
    outcomes: outcomes.map((o) => ('pending' in o ? { receipt: receipts.get(o.pending)! } : o)),
    replayed: true,
  };
}

/** A batch's id: deterministic, so a batch rerun after a crash names itself the same way. */
function batchId(revision: number, requestIds: readonly string[]): string {
  return `batch-r${revision}-${sha256Hex(encode(requestIds)).slice(0, 12)}`;
}

/** What a sisa forget would replay and what it should cost; see planSisaForget. */
export interface SisaForgetPlan {
  manifestRevision: number;
  /** Distinct samples the replay removes. */
  samples: number;
  shards: number;
  slices: number;
  /** The shards holding a sample: the slices they replay and the work that is. */
  replay: {
    shard: number;
    samplesRemoved: number;
    slicesReplayed: number[];
    sampleEpochs: number;
  }[];
  /** Shard training work: this replay's, and a full retraining's on the same data. */
  work: { sampleEpochs: number; fullTrainingSampleEpochs: number };
  routerEpochs: number;
  /** Seconds at the last measured rate; null when the model has none ("no rate yet"). */
  estimate: {
    replaySeconds: number;
    routerSeconds: number;
    totalSeconds: number;
    rate: SisaRate;
  } | null;
  /** Set when the request id already completed with these samples: a real run replays nothing. */
  completed?: true;
}

/** The plan for removing `indices` (original indices the layout holds) from a loaded sisa model. */
export function planSisaReplay(loaded: LoadedSisa, indices: ReadonlySet<number>): SisaForgetPlan {
  const { layout, sisa, manifest } = loaded;
  const next = withoutSamples(layout, indices);
  const epochs = sisa.epochsPerSlice;
  const replay: SisaForgetPlan['replay'] = [];
  let fullTrainingSampleEpochs = 0;
  for (let shard = 0; shard < layout.shards; shard++) {
    const all = Array.from({ length: layout.slices }, (_, r) => r);
    fullTrainingSampleEpochs += shardWork(next, epochs, shard, all);
    const first = layout.slots[shard]!.findIndex((slice) => slice.some((i) => indices.has(i)));
    if (first < 0) continue;
    const slicesReplayed = all.slice(first);
    replay.push({
      shard,
      samplesRemoved: layout.slots[shard]!.flat().filter((i) => indices.has(i)).length,
      slicesReplayed,
      sampleEpochs: shardWork(next, epochs, shard, slicesReplayed),
    });
  }
  const sampleEpochs = replay.reduce((sum, r) => sum + r.sampleEpochs, 0);
  const rate = sisa.rate;
  const replaySeconds = rate ? sampleEpochs / rate.sampleEpochsPerSecond : 0;
  return {
    manifestRevision: manifest.revision,
    samples: replay.reduce((sum, r) => sum + r.samplesRemoved, 0),
    shards: layout.shards,
    slices: layout.slices,
    replay,
    work: { sampleEpochs, fullTrainingSampleEpochs },
    routerEpochs: sisa.routerEpochs,
    estimate: rate
      ? {
          replaySeconds,
          routerSeconds: rate.routerSeconds,
          totalSeconds: replaySeconds + rate.routerSeconds,
          rate,
        }
      : null,
  };
}

/**
 * A dry run of a sisa forget request: the same checks as a real one (`replayBatch` refuses what
 * this refuses, with the same codes), then which shards and slices the replay would retrain and
 * an estimate of its seconds. Reads the store; writes nothing.
 */
export async function planSisaForget(
  store: ObjectStore,
  train: Dataset,
  request: { requestId?: string; sampleIds: readonly string[]; subjects?: readonly string[] },
): Promise<SisaForgetPlan> {
  const loaded = await loadSisa(store);
  const { manifest, layout } = loaded;
  const ids = [...new Set(request.sampleIds)].sort();
  const existing =
    request.requestId === undefined
      ? undefined
      : await readReceipt(store, request.requestId, manifest);
  if (existing) {
    if (
      !isSisaReceipt(existing) ||
      JSON.stringify(existing.request.sampleIds) !== JSON.stringify(ids)
    )
      throw differentRequest(request.requestId!);
    return { ...planSisaReplay(loaded, new Set()), completed: true };
  }
  const erased = erasedOf(await readLedger(store, manifest));
  checkNotErased(erased, ids, [...new Set(request.subjects ?? [])]);
  const indices = validateSamples(train, slotsByIndex(layout), allForgottenIndices(manifest), ids);
  return planSisaReplay(loaded, indices);
}

/** The replayed model's training record keeps its subject table and names the new ledger. */
function replayedTraining(manifest: Manifest, ledger: LedgerStamp): Record<string, JsonValue> {
  const before = readTrainingRecord(manifest);
  const honoured = (before?.ledger ?? {}) as Record<string, JsonValue>;
  return {
    ...(before?.subjects === undefined ? {} : { subjects: before.subjects }),
    ledger: { ...honoured, ...ledger, replayed: true },
  };
}

/** A sample or subject the ledger already holds is forgotten already: say by which request. */
function checkNotErased(erased: Erased, ids: readonly string[], subjects: readonly string[]): void {
  for (const erasure of erased.byRequest.values()) {
    const subject = subjects.find((s) => erasure.subjects.includes(s));
    const sample = ids.find((id) => erasure.sampleIds.includes(id));
    if (subject !== undefined || sample !== undefined) {
      throw new SisaRequestError(
        `${subject !== undefined ? `subject ${subject}` : `sample ${sample}`}, erased by request ${erasure.requestId}, is already forgotten`,
        'failed-precondition',
      );
    }
  }
}

function differentRequest(requestId: string): SisaRequestError {
  return new SisaRequestError(
    `request id ${requestId} was already used for a different request`,
    'already-exists',
  );
}

/** The original indices of sample ids, or the reason one cannot be forgotten from this layout. */
function validateSamples(
  train: Dataset,
  slots: ReadonlyMap<number, unknown>,
  alreadyForgotten: ReadonlySet<number>,
  ids: readonly string[],
): Set<number> {
  if (ids.length === 0) throw new SisaRequestError('no sample ids given', 'invalid-argument');
  const indices = new Set<number>();
  for (const id of ids) {
    let ref;
    try {
      ref = parseSampleId(id);
    } catch (error) {
      throw new SisaRequestError(
        error instanceof Error ? error.message : String(error),
        'invalid-argument',
      );
    }
    if (ref.dataset !== train.name || ref.split !== 'train') {
      throw new SisaRequestError(
        `sample ${id} is not in the model's training set (${train.name}:train)`,
        'not-found',
      );
    }
    if (!slots.has(ref.index)) {
      const gone = alreadyForgotten.has(ref.index);
      throw new SisaRequestError(
        gone
          ? `sample ${id} is already forgotten`
          : `sample ${id} is not in the model's training set`,
        gone ? 'failed-precondition' : 'not-found',
      );
    }
    indices.add(ref.index);
  }
  return indices;
}

function partHashes(manifest: Manifest): Record<string, string> {
  return Object.fromEntries(
    Object.entries(manifest.objects)
      .filter(([name]) => name === 'router' || name.startsWith('expert/'))
      .map(([name, ref]) => [name, ref.sha256]),
  );
}

function allForgottenIndices(manifest: Manifest): Set<number> {
  return new Set((manifest.attributes['sisaForgotten'] ?? []) as number[]);
}

async function checkpointsHolding(
  store: ObjectStore,
  indices: ReadonlySet<number>,
): Promise<CheckpointRecord[]> {
  const holding: CheckpointRecord[] = [];
  for (const record of await listCheckpoints(store)) {
    // A record whose sample list cannot be read cannot be shown clean: it counts as holding.
    const lineage = await readLineageIndices(store, record).catch(() => undefined);
    if (!lineage || lineage.some((i) => indices.has(i))) holding.push(record);
  }
  return holding;
}

async function countForgottenCheckpoints(
  store: ObjectStore,
  indices: ReadonlySet<number>,
): Promise<number> {
  return (await checkpointsHolding(store, indices)).length;
}

async function deleteForgotten(store: ObjectStore, indices: ReadonlySet<number>): Promise<void> {
  for (const record of await checkpointsHolding(store, indices))
    await deleteCheckpoint(store, record);
}

/** What `lethe verify` checks, from the store alone. */
export interface VerifyResult {
  ok: boolean;
  checked: { checkpoints: number; objects: number; forgottenSamples: number };
  problems: string[];
}

/**
 * Checks that no checkpoint in the current model's lineage — nor any stored checkpoint — holds
 * a sample a receipt says was forgotten, and that every object the lineage and the receipt name
 * matches its SHA-256.
 */
export async function verifyForgetting(
  store: ObjectStore,
  requestId: string,
): Promise<VerifyResult> {
  // The receipt first: on a joint model's store, what to say is what kind of receipt it is.
  const current = await new ManifestStore(store).read();
  const receipt = current ? await readReceipt(store, requestId, current) : undefined;
  if (receipt && !isSisaReceipt(receipt)) {
    throw new SisaRequestError(
      `receipt ${requestId} is of an approximate ${receiptKind(receipt)} forget: only an exact (sisa) forget can be verified from the store (an approximate receipt's evidence is its metrics; a coordinator checks its weight hashes against the served experts)`,
      'failed-precondition',
    );
  }
  const { manifest, sisa } = await loadSisa(store);
  if (!receipt)
    throw new SisaRequestError(`no receipt ${requestId} in the current manifest`, 'not-found');
  const problems: string[] = [];
  const forgotten = new Set(receipt.request.sampleIds.map((id) => parseSampleId(id).index));
  let objects = 1;
  let checkpoints = 0;
  for (const [shard, lineages] of sisa.lineage.entries()) {
    for (const lineage of lineages) {
      const record = await readCheckpoint(store, lineage);
      if (!record) {
        problems.push(`shard ${shard}: checkpoint ${lineage} of the current lineage is missing`);
        continue;
      }
      checkpoints++;
      for (const r of [record.ids, record.weights, record.optimizer]) {
        objects++;
        await getVerified(store, r).catch((error: unknown) =>
          problems.push(
            `shard ${shard} slice ${record.slice}: ${error instanceof Error ? error.message : String(error)}`,
          ),
        );
      }
      const held = (await readLineageIndices(store, record)).filter((i) => forgotten.has(i));
      if (held.length > 0)
        problems.push(
          `shard ${shard} slice ${record.slice}: lineage holds forgotten samples ${held.join(', ')}`,
        );
    }
    const last = sisa.lineage[shard]!.at(-1)!;
    const record = await readCheckpoint(store, last);
    if (record && manifest.objects[`expert/${shard}`]?.sha256 !== record.weights.sha256) {
      problems.push(`expert/${shard} in the manifest is not the last checkpoint of its lineage`);
    }
  }
  for (const record of await checkpointsHolding(store, forgotten)) {
    problems.push(
      `stored checkpoint ${record.lineage} (shard ${record.shard}, slice ${record.slice}) still holds a forgotten sample`,
    );
  }
  return {
    ok: problems.length === 0,
    checked: { checkpoints, objects, forgottenSamples: forgotten.size },
    problems,
  };
}
