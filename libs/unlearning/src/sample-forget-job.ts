import { randomUUID } from 'node:crypto';
import {
  type ChannelStats,
  type Dataset,
  formatSampleId,
  parseSampleId,
  positionOfIndex,
} from '@lethe/data';
import {
  appendErasures,
  type Erased,
  erasedOf,
  excludeErased,
  forgetRateKey,
  LEDGER_OBJECT,
  type Ledger,
  LedgerError,
  readLedger,
  readRoster,
  readRoutingLineage,
  type Roster,
  ROUTING_LINEAGE_OBJECT,
  type RoutingLineage,
  RoutingLineageRecorder,
  expertsThatSaw,
  routedExperts,
  type SampleForgetPlan,
  type SampleForgetReceipt,
  type SampleForgetRequestRecord,
  sameRequest,
  storeRoutingLineage,
} from '@lethe/ledger';
import {
  type LoadedModel,
  loadModel,
  type ModelCard,
  type MoEModel,
  publishModel,
  readTrainingRecord,
  type StepProgress,
} from '@lethe/model';
import type { ObjectStore } from '@lethe/store';
import {
  checkRecipeNumbers,
  DEFAULT_FORGET_RECIPE,
  ForgetRequestError,
  trainingRecipe,
} from './class-forget-job';
import {
  expertsOf,
  type ForgetOutcome,
  receiptOfRun,
  type RemoteExperts,
  storeRetrainedParts,
} from './forget-methods';
import { FrozenExpertCache } from './frozen-expert-cache';
import { measureWithThreads } from './output-threads';
import { MEASURE_MODES, type MeasureMode } from './measure-forgetting';
import {
  heldOutLoss,
  measureSampleForgetting,
  sampleMeasurePositions,
  type SampleForgetMetrics,
} from './measure-samples';
import {
  loadOutputMemos,
  memoCoverage,
  outputsKey,
  pruneOutputMemos,
  saveOutputMemos,
  weightHashes as weightsOf,
} from './output-memo';
import {
  assertValidRequestId,
  isSampleForgetReceipt,
  readReceipt,
  receiptObjectName,
  storeReceipt,
} from './receipt';
import {
  runSampleForgetMethod,
  SAMPLE_FORGET_METHODS,
  type SampleForgetMethod,
} from './sample-forget-methods';

/** Forget training samples (by id, or every sample of some data subjects) of a joint model. */
export interface SampleForgetRequest {
  /** Client-chosen id that makes the request idempotent; generated when absent. */
  requestId?: string;
  /** Sample ids (`dataset:train:index`). */
  sampleIds?: readonly string[];
  /** Data subjects: every sample the model's roster gives them. */
  subjects?: readonly string[];
  method?: SampleForgetMethod;
  epochs?: number;
  learningRate?: number;
  /** Weight of the forgetting term (neggrad+, scrub) or of the ℓ1 penalty (l1-sparse). */
  lambda?: number;
  /** neggrad+ only: weight of the anchor to the original model's outputs on retained samples. */
  anchor?: number;
  /** Share of the retained samples retrained on (0 < F ≤ 1). */
  retainFraction?: number;
  measure?: MeasureMode;
  batchSize?: number;
  seed?: number;
}

// The request record, plan and receipt are stored: their schemas are @lethe/ledger's.
export type {
  SampleForgetPlan,
  SampleForgetReceipt,
  SampleForgetRequestRecord,
} from '@lethe/ledger';
import {
  estimateForget,
  forgetRateAttribute,
  lastForgetRate,
  type ForgetEstimate,
} from './forget-estimate';

export interface SampleForgetContext {
  store: ObjectStore;
  /** The stored model's training set (as limited for training); the ledger is applied here. */
  train: Dataset;
  test: Dataset;
  onStatus?: (message: string) => void;
  onStep?: (progress: StepProgress) => void;
  signal?: AbortSignal;
  /** Where the retrained experts step (the coordinator's workers); default here. */
  remoteExperts?: RemoteExperts;
  /** Worker threads the before/after measurement may spread its inference over (default 1). */
  measureThreads?: number;
}

/** What a sample forget would do and cost, computed without changing anything. */
export interface SampleForgetPreview {
  request: SampleForgetRequestRecord;
  plan: SampleForgetPlan;
  estimate: ForgetEstimate;
  manifestRevision: number;
}

/**
 * The recipe a sample request gets for what it leaves unset. The default method and its epochs
 * and λ are the ones the measurements in docs/forgetting-samples.md scored closest to the
 * retrain oracle (neggrad+: one epoch at λ 3, its ascent stopped at the model's test loss, the
 * retained samples anchored to the original outputs with weight 1, on a 10-epoch model); epochs
 * and λ are per method (λ a loss weight for neggrad+ and scrub, an ℓ1 weight for l1-sparse).
 */
export const DEFAULT_SAMPLE_FORGET_RECIPE = {
  method: 'neggrad+' as SampleForgetMethod,
  // (retrain: the stored training recipe's, read from the model.)
  epochs: { finetune: 2, 'neggrad+': 1, scrub: 2, 'l1-sparse': 2, retrain: 0 },
  learningRate: 3e-4,
  lambda: { finetune: 0, 'neggrad+': 3, scrub: 1, 'l1-sparse': 5e-4, retrain: 0 },
  /** neggrad+'s anchor to the original outputs on retained samples. */
  anchor: 1,
  retainFraction: 0.2,
  batchSize: DEFAULT_FORGET_RECIPE.batchSize,
  measure: DEFAULT_FORGET_RECIPE.measure,
} as const;

interface Prepared {
  requestId: string;
  record: SampleForgetRequestRecord;
  loaded: LoadedModel;
  existing: SampleForgetReceipt | undefined;
  roster: Roster;
  lineage: RoutingLineage;
  ledger: Ledger;
  /** The training set without the ledger's earlier erasures. */
  train: Dataset;
  /** Training positions (in `train`) of the samples to forget. */
  forgotten: Int32Array;
  /** The experts the routing lineage says saw them. */
  experts: number[];
}

const codeOf = (error: LedgerError): ForgetRequestError['code'] => error.code;

/** Validates a request against the stored model; throws ForgetRequestError, changes nothing. */
async function prepare(ctx: SampleForgetContext, request: SampleForgetRequest): Promise<Prepared> {
  const requestId = request.requestId ?? randomUUID();
  try {
    assertValidRequestId(requestId);
  } catch (error) {
    throw new ForgetRequestError((error as Error).message, 'invalid-argument');
  }
  const method = request.method ?? DEFAULT_SAMPLE_FORGET_RECIPE.method;
  if (!SAMPLE_FORGET_METHODS.includes(method)) {
    throw new ForgetRequestError(
      `unknown sample-forget method ${String(method).slice(0, 40)} (known: ${SAMPLE_FORGET_METHODS.join(', ')})`,
      'invalid-argument',
    );
  }
  // The same bounds as a class request's (its class is not a number to check).
  checkRecipeNumbers(request);
  if (request.anchor !== undefined && method !== 'neggrad+') {
    throw new ForgetRequestError(
      `anchor applies to the neggrad+ sample method only, not ${method}`,
      'invalid-argument',
    );
  }
  if (request.measure !== undefined && !MEASURE_MODES.includes(request.measure)) {
    throw new ForgetRequestError(
      `unknown measure mode ${String(request.measure).slice(0, 40)} (known: ${MEASURE_MODES.join(', ')})`,
      'invalid-argument',
    );
  }
  const named = [...new Set(request.sampleIds ?? [])];
  const subjects = [...new Set(request.subjects ?? [])].sort();
  if (named.length === 0 && subjects.length === 0) {
    throw new ForgetRequestError('name the samples or subjects to forget', 'invalid-argument');
  }
  for (const id of named) {
    try {
      parseSampleId(id);
    } catch (error) {
      throw new ForgetRequestError((error as Error).message.slice(0, 200), 'invalid-argument');
    }
  }
  if (subjects.some((s) => s.length === 0)) {
    throw new ForgetRequestError('a subject id is empty', 'invalid-argument');
  }
  const loaded = await loadModel(ctx.store).catch((error: unknown) => {
    throw new ForgetRequestError(
      error instanceof Error ? error.message : String(error),
      'failed-precondition',
    );
  });
  try {
    const { card, manifest } = loaded;
    if (readTrainingRecord(manifest)?.mode === 'sisa') {
      throw new ForgetRequestError(
        'the stored model is a sisa model: its samples are forgotten exactly, by replay (lethe forget --samples)',
        'failed-precondition',
      );
    }
    const roster = await readRoster(ctx.store, manifest);
    const lineage = await readRoutingLineage(ctx.store, manifest);
    if (!roster || !lineage) {
      throw new ForgetRequestError(
        'the stored model has no roster or routing lineage (it was trained before they were recorded): train it again to forget samples',
        'failed-precondition',
      );
    }
    const sampleIds = [...new Set([...named, ...subjectSamples(roster, subjects)])].sort();
    const recipe = DEFAULT_SAMPLE_FORGET_RECIPE;
    const record: SampleForgetRequestRecord = {
      kind: 'samples',
      sampleIds,
      subjects,
      method,
      // The oracle trains a fresh model with the stored training recipe's epochs.
      epochs:
        request.epochs ??
        (method === 'retrain'
          ? trainingRecipe(readTrainingRecord(manifest)).epochs
          : recipe.epochs[method]),
      learningRate: request.learningRate ?? recipe.learningRate,
      lambda: request.lambda ?? recipe.lambda[method],
      ...(method === 'neggrad+' ? { anchor: request.anchor ?? recipe.anchor } : {}),
      retainFraction: request.retainFraction ?? recipe.retainFraction,
      batchSize: request.batchSize ?? recipe.batchSize,
      seed: request.seed ?? 0,
      measure: request.measure ?? recipe.measure,
    };
    const stored = await readReceipt(ctx.store, requestId);
    const existing = stored && isSampleForgetReceipt(stored) ? stored : undefined;
    if (stored && (!existing || !sameRequest(existing.request, record))) {
      throw new ForgetRequestError(
        `request id ${requestId} was already used for a different request`,
        'already-exists',
      );
    }
    const ledger = await readLedger(ctx.store, manifest);
    const erased = erasedOf(ledger);
    if (!existing) checkAlreadyErased(erased, roster, sampleIds, subjects);
    let experts: number[];
    try {
      experts = expertsThatSaw(roster, lineage, sampleIds);
    } catch (error) {
      if (error instanceof LedgerError) throw new ForgetRequestError(error.message, codeOf(error));
      throw error;
    }
    if (!existing) checkData(ctx, card);
    const train = excludeErased(ctx.train, erased).train;
    const forgotten = Int32Array.from(sampleIds, (id) => {
      const ref = parseSampleId(id);
      const p = ref.dataset === train.name ? positionOfIndex(train, ref.index) : -1;
      if (p < 0 && !existing) {
        throw new ForgetRequestError(
          `sample ${id} is in the model's roster but not in the training data given (${train.name}, ${train.size} samples): pass the model's training data`,
          'failed-precondition',
        );
      }
      return p;
    }).sort();
    return {
      requestId,
      record,
      loaded,
      existing,
      roster,
      lineage,
      ledger,
      train,
      forgotten,
      experts,
    };
  } catch (error) {
    loaded.model.dispose();
    throw error;
  }
}

/** The roster's samples of the subjects; not found for a subject without one. */
function subjectSamples(roster: Roster, subjects: readonly string[]): string[] {
  if (subjects.length === 0) return [];
  if (roster.subjectTable === null || roster.subjects === null) {
    throw new ForgetRequestError(
      'the stored model was trained without a subject table (lethe train --subjects FILE)',
      'not-found',
    );
  }
  const ids: string[] = [];
  for (const subject of subjects) {
    const own = roster.indices.filter((_, p) => roster.subjects![p] === subject);
    if (own.length === 0) {
      throw new ForgetRequestError(
        `subject ${JSON.stringify(subject).slice(0, 80)} has no sample in the stored model's training set`,
        'not-found',
      );
    }
    ids.push(...own.map((i) => formatSampleId(roster.dataset, 'train', i)));
  }
  return ids;
}

/** A sample, subject or class the ledger already holds: refused, naming the request. */
function checkAlreadyErased(
  erased: Erased,
  roster: Roster,
  sampleIds: readonly string[],
  subjects: readonly string[],
): void {
  const subject = subjects.find((s) => erased.subjects.has(s));
  const label = new Map(
    roster.indices.map((i, p) => [formatSampleId(roster.dataset, 'train', i), roster.labels[p]!]),
  );
  const sample = sampleIds.find(
    (id) =>
      erased.sampleIds.has(id) || erased.classes.has(roster.classes[label.get(id) ?? -1] ?? ''),
  );
  if (subject === undefined && sample === undefined) return;
  const by = [...erased.byRequest.values()].find((e) =>
    subject !== undefined
      ? e.subjects.includes(subject)
      : e.sampleIds.includes(sample!) ||
        e.classes.includes(roster.classes[label.get(sample!) ?? -1] ?? ''),
  );
  throw new ForgetRequestError(
    `${subject !== undefined ? `subject ${subject}` : `sample ${sample}`} is already forgotten (request ${by?.requestId ?? '?'}, in the erasure ledger)`,
    'failed-precondition',
  );
}

function checkData(ctx: SampleForgetContext, card: ModelCard): void {
  for (const ds of [ctx.train, ctx.test]) {
    if (ds.classes.join('\n') !== card.classes.join('\n')) {
      throw new ForgetRequestError(
        `the ${ds.split} data has classes [${ds.classes.join(', ')}], the stored model [${card.classes.join(', ')}]`,
        'failed-precondition',
      );
    }
  }
}

/**
 * The plan from stored facts: the experts that saw the samples (routing lineage, every epoch),
 * and, from the last recorded epoch, the retained samples those experts carry.
 */
function planOf(prepared: Prepared): { plan: SampleForgetPlan; routedRetained: Int32Array } {
  const { roster, lineage, train, record, forgotten, experts } = prepared;
  const rosterPosition = new Map(roster.indices.map((index, p) => [index, p]));
  const seenBy = new Array<number>(lineage.experts).fill(0);
  for (const id of record.sampleIds) {
    const p = rosterPosition.get(parseSampleId(id).index)!;
    const seen = new Set(routedExperts(lineage, p).flat());
    seen.forEach((e) => seenBy[e]!++);
  }
  const planned = new Set(experts);
  const gone = new Set(forgotten);
  const routed: number[] = [];
  let slots = 0;
  let plannedSlots = 0;
  const last = lineage.epochs.length - 1;
  for (let q = 0; q < train.size; q++) {
    if (gone.has(q)) continue;
    const p = rosterPosition.get(train.indices[q]!);
    if (p === undefined || last < 0) continue;
    const lastEpoch = routedExperts({ ...lineage, epochs: [lineage.epochs[last]!] }, p)[0]!;
    slots += lastEpoch.length;
    const hits = lastEpoch.filter((e) => planned.has(e)).length;
    plannedSlots += hits;
    if (hits > 0) routed.push(q);
  }
  return {
    plan: {
      samples: record.sampleIds.length,
      experts,
      seenBy,
      lineageEpochs: lineage.epochs.length,
      retainedRouted: routed.length,
      collateral: slots > 0 ? (100 * plannedSlots) / slots : 0,
    },
    routedRetained: Int32Array.from(routed),
  };
}

/** Plans a sample forget and estimates its cost; the same checks as a real one, nothing changed. */
export async function previewSampleForget(
  ctx: SampleForgetContext,
  request: SampleForgetRequest,
): Promise<SampleForgetPreview> {
  const prepared = await prepare(ctx, request);
  try {
    const { plan } = planOf(prepared);
    const { record } = prepared;
    const retained = prepared.train.size - prepared.forgotten.length;
    const approximate = record.method !== 'retrain';
    const fineTuning = record.method === 'finetune' || record.method === 'l1-sparse';
    const trainingSamples = approximate
      ? (fineTuning ? 0 : plan.samples) + Math.max(1, Math.round(retained * record.retainFraction))
      : retained;
    const training = readTrainingRecord(prepared.loaded.manifest);
    const epochs = approximate ? record.epochs : trainingRecipe(training).epochs;
    const measurePositions = sampleMeasurePositions(
      prepared.train,
      new Set(prepared.forgotten),
      record.measure,
      record.seed,
    );
    // scrub's teacher runs on every retraining sample; neggrad+'s anchor reads the "before"
    // measurement's outputs and runs the model only on retained samples outside its draw.
    const retainedMeasured = measurePositions.length - prepared.forgotten.length;
    const teacherSamples =
      record.method === 'scrub'
        ? trainingSamples
        : (record.anchor ?? 0) > 0
          ? Math.round(
              (trainingSamples - plan.samples) * (1 - retainedMeasured / Math.max(1, retained)),
            )
          : 0;
    const expertsRetrained = approximate
      ? plan.experts.length
      : prepared.loaded.card.config.experts;
    const { model } = prepared.loaded;
    const measured = await memoCoverage(
      ctx.store,
      outputsKey(weightsOf(prepared.loaded.manifest), prepared.train, ctx.test),
      { train: prepared.train, test: ctx.test },
      { classes: model.config.numClasses, topK: model.config.topK },
      measurePositions,
    );
    return {
      request: record,
      plan,
      estimate: estimateForget(
        {
          trainingSamples,
          epochs,
          expertsRetrained,
          teacherSamples,
          measureThreads: ctx.measureThreads ?? 1,
        },
        measured,
        training,
        lastForgetRate(
          prepared.loaded.manifest,
          forgetRateKey('samples', record.method),
          model.config,
        ),
      ),
      manifestRevision: prepared.loaded.manifest.revision,
    };
  } finally {
    prepared.loaded.model.dispose();
  }
}

/**
 * Forgets training samples of the stored joint model approximately: retrains the router and
 * the experts the routing lineage says saw them (`method`), measures before and after, and
 * publishes the new weights, the receipt, the erasure-ledger entry and the extended lineage in
 * one manifest revision. Re-sending a request id that completed returns its receipt.
 */
export async function forgetJointSamples(
  ctx: SampleForgetContext,
  request: SampleForgetRequest,
): Promise<SampleForgetReceipt> {
  const started = performance.now();
  const status = ctx.onStatus ?? (() => undefined);
  const prepared = await prepare(ctx, request);
  const { requestId, record, forgotten, train } = prepared;
  const { card, manifest } = prepared.loaded;
  let model = prepared.loaded.model;
  try {
    if (prepared.existing) return prepared.existing;
    const normalise = card.normalisation as ChannelStats;
    const { plan, routedRetained } = planOf(prepared);
    const approximate = record.method !== 'retrain';
    status(
      `plan: ${plan.samples} ${plan.samples === 1 ? 'sample was' : 'samples were'} routed to ${plan.experts.map((e) => `e${e}`).join(', ') || 'no expert'} ` +
        `in ${plan.lineageEpochs} recorded epoch${plan.lineageEpochs === 1 ? '' : 's'}; ` +
        (approximate
          ? `retraining them + router (${record.method}); they carry ${plan.collateral.toFixed(1)}% of the retained samples' routing`
          : 'retraining a fresh model without them (oracle)'),
    );
    const frozen = new Set(
      Array.from({ length: model.config.experts }, (_, e) => e).filter(
        (e) => !plan.experts.includes(e),
      ),
    );
    const caches =
      approximate && plan.experts.length > 0
        ? {
            train: new FrozenExpertCache(model, frozen, train.size),
            test: new FrozenExpertCache(model, frozen, ctx.test.size),
          }
        : undefined;
    const shape = { classes: model.config.numClasses, topK: model.config.topK };
    const data = { train, test: ctx.test };
    const suppress = card.suppressClasses ?? [];
    const measured = {
      train: sampleMeasurePositions(train, new Set(forgotten), record.measure, record.seed),
      test: Int32Array.from({ length: ctx.test.size }, (_, i) => i),
    };
    const measure = (
      m: MoEModel,
      memos: Awaited<ReturnType<typeof loadOutputMemos>>,
    ): Promise<SampleForgetMetrics> =>
      measureWithThreads(
        m,
        normalise,
        [
          { ds: train, memo: memos.train, positions: measured.train },
          { ds: ctx.test, memo: memos.test, positions: measured.test },
        ],
        ctx.measureThreads ?? 1,
        status,
        () =>
          measureSampleForgetting(m, train, ctx.test, forgotten, normalise, suppress, {
            mode: record.measure,
            seed: record.seed,
            memos,
            ...(caches ? { caches } : {}),
          }),
      );

    status(`measuring the model before forgetting (${record.measure})`);
    let t = performance.now();
    const beforeHashes = weightsOf(manifest);
    const beforeMemos = await loadOutputMemos(
      ctx.store,
      outputsKey(beforeHashes, train, ctx.test),
      data,
      shape,
    );
    const before = await measure(model, beforeMemos);
    let measureSeconds = (performance.now() - t) / 1000;
    // neggrad+ stops its ascent where a sample looks unseen: at the model's loss on the test
    // split, which the "before" has just measured (one number, the same for every sample), or
    // at chance's if that is lower.
    const classes = model.config.numClasses;
    const ascentStop =
      record.method === 'neggrad+'
        ? Math.min(Math.log(classes), heldOutLoss(beforeMemos.test, ctx.test, classes))
        : undefined;

    // The retraining's routing extends the lineage (retrained experts only: frozen ones did
    // not learn), so a later request for a sample they now saw plans them too.
    const rosterPosition = new Map(prepared.roster.indices.map((index, p) => [index, p]));
    const learners = new Set(approximate ? plan.experts : []);
    const recorder = new RoutingLineageRecorder(prepared.lineage.samples, prepared.lineage.experts);
    const onRouted = (epoch: number, positions: Int32Array, chosen: Int32Array): void => {
      const k = chosen.length / positions.length;
      for (let i = 0; i < chosen.length; i++) {
        const e = chosen[i]!;
        if (approximate && !learners.has(e)) continue;
        const p = rosterPosition.get(train.indices[positions[Math.floor(i / k)]!]!);
        if (p !== undefined) recorder.record(epoch, [p], [e]);
      }
    };
    const outcome: Omit<ForgetOutcome, 'seconds'> & { seconds: number } =
      approximate && plan.experts.length === 0
        ? // No expert (and so no router step) ever saw them: there is nothing to retrain.
          { model, parts: [], history: [], suppressClasses: [], seconds: 0 }
        : await runSampleForgetMethod(record.method, {
            model,
            train,
            normalise,
            forgotten,
            experts: plan.experts,
            routedRetained,
            epochs: record.epochs,
            learningRate: record.learningRate,
            batchSize: record.batchSize,
            lambda: record.lambda,
            anchor: record.anchor ?? 0,
            originalOutputs: beforeMemos.train,
            ...(ascentStop !== undefined ? { ascentStop } : {}),
            retainFraction: record.retainFraction,
            seed: record.seed,
            recipe: trainingRecipe(readTrainingRecord(manifest)),
            onRouted,
            ...(caches ? { cache: caches.train } : {}),
            ...(ctx.onStep ? { onStep: ctx.onStep } : {}),
            ...(ctx.signal ? { signal: ctx.signal } : {}),
            ...(ctx.remoteExperts && approximate ? { remoteExperts: ctx.remoteExperts } : {}),
          });
    if (outcome.model !== model) {
      model.dispose();
      model = outcome.model;
    }
    const { refs, afterHashes } = await storeRetrainedParts(
      ctx.store,
      model,
      outcome.parts,
      beforeHashes,
    );
    status('measuring the model after forgetting');
    t = performance.now();
    const afterMemos = await loadOutputMemos(
      ctx.store,
      outputsKey(afterHashes, train, ctx.test),
      data,
      shape,
    );
    const after = await measure(model, afterMemos);
    measureSeconds += (performance.now() - t) / 1000;
    const receipt: SampleForgetReceipt = {
      schema: 1,
      requestId,
      createdAt: new Date().toISOString(),
      request: record,
      mode: 'approximate',
      plan,
      expertsRetrained: approximate
        ? expertsOf(outcome.parts)
        : Array.from({ length: model.config.experts }, (_, e) => e),
      metrics: { before, after },
      ...(ascentStop !== undefined ? { ascentStop } : {}),
      timings: {
        forgetSeconds: outcome.seconds,
        measureSeconds,
        totalSeconds: (performance.now() - started) / 1000,
      },
      ...receiptOfRun(outcome, { before: beforeHashes, after: afterHashes }, manifest.revision),
    };
    const receiptRef = await storeReceipt(ctx.store, receipt);
    const ledgerRef = await appendErasures(ctx.store, prepared.ledger, [
      {
        requestId,
        receipt: receiptRef,
        mode: 'approximate',
        sampleIds: record.sampleIds,
        subjects: record.subjects,
      },
    ]);
    const added = recorder.toRecord().epochs;
    // The oracle's model is new: its lineage is its own training's, nothing earlier.
    const lineage: RoutingLineage = {
      ...prepared.lineage,
      epochs: approximate ? [...prepared.lineage.epochs, ...added] : added,
    };
    const lineageRef = await storeRoutingLineage(ctx.store, lineage);
    await publishModel(ctx.store, { ...card, config: model.config }, refs, {
      objects: {
        [receiptObjectName(requestId)]: receiptRef,
        [LEDGER_OBJECT]: ledgerRef,
        [ROUTING_LINEAGE_OBJECT]: lineageRef,
      },
      attributes: forgetRateAttribute(
        manifest,
        forgetRateKey('samples', record.method),
        requestId,
        model,
        receipt,
      ),
      expectRevision: manifest.revision,
    });
    // A cache: a failure to write it costs the next forget a measurement pass, nothing else.
    await saveOutputMemos(ctx.store, afterMemos)
      .then(() => pruneOutputMemos(ctx.store, afterMemos.key))
      .catch((error: unknown) =>
        status(`note: could not store the measured outputs for reuse (${String(error)})`),
      );
    return receipt;
  } finally {
    model.dispose();
  }
}
