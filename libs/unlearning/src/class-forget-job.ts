import { randomUUID } from 'node:crypto';
import type { ChannelStats, Dataset } from '@lethe/data';
import {
  appendErasures,
  erasedOf,
  excludeErased,
  forgetRateKey,
  LEDGER_OBJECT,
  type Ledger,
  readLedger,
  sameRequest,
} from '@lethe/ledger';
import {
  type LoadedModel,
  loadModel,
  type ModelCard,
  type MoEModel,
  publishModel,
  type StepProgress,
  readTrainingRecord,
  type TrainingRecord,
} from '@lethe/model';
import type { JsonValue, ObjectStore } from '@lethe/store';
import {
  DEFAULT_SELECTION,
  formatSelectionRule,
  parseSelectionRule,
  type SelectionRule,
} from '@lethe/metrics';
import {
  expertsOf,
  FORGET_METHODS,
  type ForgetMethod,
  receiptOfRun,
  storeRetrainedParts,
  type RemoteExperts,
  runForgetMethod,
  type TrainingRecipe,
  type UnlearningLoss,
} from './forget-methods';
import { type ClassForgetPlan, planClassForget, routeTrainingSet } from './forget-plan';
import { FrozenExpertCache } from './frozen-expert-cache';
import {
  loadOutputMemos,
  type OutputMemos,
  type MeasuredOutputs,
  memoCoverage,
  outputsKey,
  pruneOutputMemos,
  saveOutputMemos,
  weightHashes as weightsOf,
} from './output-memo';
import {
  type ForgetMetrics,
  MEASURE_MODES,
  type MeasureMode,
  measureForgetting,
  measurePositions,
} from './measure-forgetting';
import {
  assertValidRequestId,
  type ClassForgetRequestRecord,
  type ForgetReceipt,
  isClassReceipt,
  readReceipt,
  receiptObjectName,
  storeReceipt,
} from './receipt';
import { measureWithThreads } from './output-threads';
import {
  estimateForget,
  forgetRateAttribute,
  lastForgetRate,
  type ForgetEstimate,
  type ForgetWork,
} from './forget-estimate';

export interface ClassForgetRequest {
  /** Client-chosen id that makes the request idempotent; generated when absent. */
  requestId?: string;
  /** Class name or index. */
  class: string;
  method?: ForgetMethod;
  loss?: UnlearningLoss;
  epochs?: number;
  learningRate?: number;
  lambda?: number;
  /** Targeted only: share of retained samples to retrain on (0 < F ≤ 1). */
  retainFraction?: number;
  /** Targeted distill only: weight of the router anchor (≥ 0). */
  anchor?: number;
  /** What before/after metrics are computed on: `sample` (default) or `full`. */
  measure?: MeasureMode;
  /** `coverage:F` or `top:N`. */
  select?: string;
  maskOutput?: boolean;
  batchSize?: number;
  seed?: number;
}

export interface ClassForgetContext {
  store: ObjectStore;
  train: Dataset;
  test: Dataset;
  onStatus?: (message: string) => void;
  /** What the result's own evidence warns about (default: `onStatus`). */
  onWarning?: (message: string) => void;
  onStep?: (progress: StepProgress) => void;
  signal?: AbortSignal;
  /** Where the targeted method retrains its experts (the coordinator's workers); default here. */
  remoteExperts?: RemoteExperts;
  /**
   * An earlier receipt whose "before" metrics are reused instead of measured again: benchmarks
   * forget the same class of the same model with several methods. Refused unless it was
   * measured on the same weights, manifest revision and class.
   */
  beforeFrom?: ForgetReceipt;
  /** Worker threads the before/after measurement may spread its inference over (default 1). */
  measureThreads?: number;
}

/** A request that cannot be carried out as asked; nothing was changed. */
export class ForgetRequestError extends Error {
  constructor(
    message: string,
    readonly code: 'invalid-argument' | 'not-found' | 'failed-precondition' | 'already-exists',
  ) {
    super(message);
    this.name = 'ForgetRequestError';
  }
}

interface ForgottenRecord {
  classIndex: number;
  className: string;
  requestId: string;
  method: ForgetMethod;
}

/**
 * The recipe a request gets for what it leaves unset. The targeted method's is the cheap one
 * the benchmark measured best (BENCHMARKS.md, unlearn-class): one epoch of distillation on
 * the forgotten samples and a fifth of the retained ones, the router anchored to its old gates.
 * lr 2e-4, not 3e-4: since the plan retrains every expert a class reaches (coverage 0.99), 3e-4
 * cost the retained samples up to 1.7 points against the oracle; 2e-4 still forgets the class
 * (BENCHMARKS.md, unlearn-class-c99 notes). The baselines keep the original recipe (5 epochs,
 * lr 1e-4, all data).
 */
export const DEFAULT_FORGET_RECIPE = {
  targeted: {
    loss: 'distill',
    epochs: 1,
    learningRate: 2e-4,
    lambda: 3,
    retainFraction: 0.2,
    anchor: 1,
  },
  baseline: { epochs: 5, learningRate: 1e-4 },
  batchSize: 128,
  measure: 'sample',
} as const;

/** What a forget would do and cost, computed without changing anything. */
export interface ForgetPreview {
  request: ClassForgetRequestRecord;
  plan: ClassForgetPlan;
  estimate: ForgetEstimate;
  /** The manifest revision the plan was made on. */
  manifestRevision: number;
}

interface Prepared {
  requestId: string;
  record: ClassForgetRequestRecord;
  rule: SelectionRule;
  loaded: LoadedModel;
  forgotten: ForgottenRecord[];
  existing: ForgetReceipt | undefined;
  /** The training set without what the store's erasure ledger holds: what "retained" means. */
  train: Dataset;
  ledger: Ledger;
}

/** Validates a request against the stored model; throws ForgetRequestError, changes nothing. */
async function prepare(ctx: ClassForgetContext, request: ClassForgetRequest): Promise<Prepared> {
  const requestId = request.requestId ?? randomUUID();
  assertValidRequestId(requestId);
  const method = request.method ?? 'targeted';
  if (!FORGET_METHODS.includes(method)) {
    throw new ForgetRequestError(
      `unknown method ${method} (known: ${FORGET_METHODS.join(', ')})`,
      'invalid-argument',
    );
  }
  checkRecipeNumbers(request);
  const targetedOnly = [request.select, request.loss, request.retainFraction, request.anchor];
  if (method !== 'targeted' && targetedOnly.some((v) => v !== undefined)) {
    throw new ForgetRequestError(
      `--select, --loss, --retain-fraction and --anchor apply to the targeted method only, not ${method}`,
      'invalid-argument',
    );
  }
  if (request.measure !== undefined && !MEASURE_MODES.includes(request.measure)) {
    throw new ForgetRequestError(
      `unknown measure mode ${String(request.measure).slice(0, 40)} (known: ${MEASURE_MODES.join(', ')})`,
      'invalid-argument',
    );
  }
  let rule: SelectionRule;
  try {
    rule = request.select ? parseSelectionRule(request.select) : DEFAULT_SELECTION;
  } catch (error) {
    throw new ForgetRequestError((error as Error).message, 'invalid-argument');
  }
  const loaded = await loadModel(ctx.store).catch((error: unknown) => {
    throw new ForgetRequestError(
      error instanceof Error ? error.message : String(error),
      'failed-precondition',
    );
  });
  try {
    const { card, manifest } = loaded;
    const classIndex = resolveClass(request.class, card.classes);
    const targeted = method === 'targeted';
    const recipe = DEFAULT_FORGET_RECIPE;
    const record: ClassForgetRequestRecord = {
      kind: 'class',
      classIndex,
      className: card.classes[classIndex]!,
      method,
      loss: request.loss ?? recipe.targeted.loss,
      epochs: request.epochs ?? (targeted ? recipe.targeted.epochs : recipe.baseline.epochs),
      learningRate:
        request.learningRate ??
        (targeted ? recipe.targeted.learningRate : recipe.baseline.learningRate),
      lambda: request.lambda ?? recipe.targeted.lambda,
      retainFraction: request.retainFraction ?? (targeted ? recipe.targeted.retainFraction : 1),
      anchor: request.anchor ?? (targeted ? recipe.targeted.anchor : 0),
      select: formatSelectionRule(rule),
      maskOutput: request.maskOutput ?? false,
      batchSize: request.batchSize ?? recipe.batchSize,
      seed: request.seed ?? 0,
      measure: request.measure ?? recipe.measure,
    };
    const stored = await readReceipt(ctx.store, requestId);
    const existing = stored && isClassReceipt(stored) ? stored : undefined;
    if (stored && (!existing || !sameRequest(existing.request, record))) {
      throw new ForgetRequestError(
        `request id ${requestId} was already used for a different request`,
        'already-exists',
      );
    }
    const forgotten = (manifest.attributes['forgotten'] ?? []) as unknown as ForgottenRecord[];
    const previous = forgotten.find((f) => f.classIndex === classIndex);
    if (!existing && previous) {
      throw new ForgetRequestError(
        `class ${record.className} was already forgotten (request ${previous.requestId}, method ${previous.method})`,
        'failed-precondition',
      );
    }
    // The ledger outlives the model: a class erased before the last training stays erased.
    const ledger = await readLedger(ctx.store, manifest);
    const erased = erasedOf(ledger);
    const erasure = [...erased.byRequest.values()].find((e) =>
      e.classes.includes(record.className),
    );
    if (!existing && erasure) {
      throw new ForgetRequestError(
        `class ${record.className} was already forgotten (request ${erasure.requestId}, in the erasure ledger)`,
        'failed-precondition',
      );
    }
    if (!existing) checkData(ctx, card);
    const train = excludeErased(ctx.train, erased).train;
    return { requestId, record, rule, loaded, forgotten, existing, train, ledger };
  } catch (error) {
    loaded.model.dispose();
    throw error;
  }
}

/**
 * Plans a class forget and estimates its cost without changing anything: the same checks as a
 * real request (unknown class, no model, class already forgotten), then one router pass.
 */
export async function previewClassForget(
  ctx: ClassForgetContext,
  request: ClassForgetRequest,
): Promise<ForgetPreview> {
  const prepared = await prepare(ctx, request);
  ctx = { ...ctx, train: prepared.train };
  const { model, card, manifest } = prepared.loaded;
  try {
    const routing = await routeTrainingSet(
      model,
      ctx.train,
      card.normalisation as ChannelStats,
      ctx.signal,
    );
    const plan = planClassForget(routing, ctx.train, prepared.record.classIndex, prepared.rule);
    const measured = await measuredOutputs(ctx, prepared.record, weightsOf(manifest), model);
    return {
      request: prepared.record,
      plan,
      estimate: estimateForget(
        classForgetWork(prepared.record, plan, ctx),
        measured,
        readTrainingRecord(manifest),
        lastForgetRate(manifest, forgetRateKey('class', prepared.record.method), model.config),
      ),
      manifestRevision: manifest.revision,
    };
  } finally {
    model.dispose();
  }
}

/**
 * Forgets one class of the stored model: plans which experts saw it, runs the method, measures
 * before and after, and publishes the new weights together with a receipt in one manifest
 * revision — so the store never holds forgotten weights without their receipt, or the reverse.
 * Re-sending a request id that completed returns its receipt without doing the work again.
 */
export async function forgetClass(
  ctx: ClassForgetContext,
  request: ClassForgetRequest,
): Promise<ForgetReceipt> {
  const started = performance.now();
  const status = ctx.onStatus ?? (() => undefined);
  const prepared = await prepare(ctx, request);
  ctx = { ...ctx, train: prepared.train };
  const { requestId, record, rule, forgotten } = prepared;
  let { model } = prepared.loaded;
  const { card, manifest } = prepared.loaded;
  try {
    if (prepared.existing) return prepared.existing;
    const { classIndex, method } = record;
    const normalise = card.normalisation as ChannelStats;

    let t = performance.now();
    status(
      `routing the ${ctx.train.size} training samples to plan the forget of ${record.className}`,
    );
    const routing = await routeTrainingSet(model, ctx.train, normalise, ctx.signal);
    const plan = planClassForget(routing, ctx.train, classIndex, rule);
    const planSeconds = (performance.now() - t) / 1000;
    const targeted = method === 'targeted';
    status(
      `plan: class ${record.className} activates experts ${plan.activations.map((n, e) => `e${e}:${n}`).join(' ')}; ` +
        (targeted
          ? `retraining ${plan.experts.map((e) => `e${e}`).join(', ')} + router (${plan.rule}); ` +
            `they carry ${plan.collateral.toFixed(1)}% of the other classes' routing`
          : `method ${method}`),
    );
    // A targeted forget leaves the other experts bit-identical: their logits, computed once for
    // the "before" measurement, serve the teacher pass, the retraining and the "after" one.
    const frozen = new Set(
      Array.from({ length: model.config.experts }, (_, e) => e).filter(
        (e) => !plan.experts.includes(e),
      ),
    );
    const caches = targeted
      ? {
          train: new FrozenExpertCache(model, frozen, ctx.train.size),
          test: new FrozenExpertCache(model, frozen, ctx.test.size),
        }
      : undefined;
    const shape = { classes: model.config.numClasses, topK: model.config.topK };
    const data = { train: ctx.train, test: ctx.test };
    const measured = {
      train: measurePositions(ctx.train, classIndex, record.measure ?? 'sample', record.seed),
      test: Int32Array.from({ length: ctx.test.size }, (_, i) => i),
    };
    const measure = (
      m: MoEModel,
      suppress: readonly number[],
      memos: OutputMemos,
    ): Promise<ForgetMetrics> =>
      measureWithThreads(
        m,
        normalise,
        [
          { ds: ctx.train, memo: memos.train, positions: measured.train },
          { ds: ctx.test, memo: memos.test, positions: measured.test },
        ],
        ctx.measureThreads ?? 1,
        status,
        () =>
          measureForgetting(m, ctx.train, ctx.test, classIndex, normalise, suppress, {
            mode: record.measure ?? 'sample',
            seed: record.seed,
            memos,
            ...(caches ? { caches } : {}),
          }),
      );

    status(
      ctx.beforeFrom
        ? `reusing the "before" metrics of receipt ${ctx.beforeFrom.requestId}`
        : `measuring the model before forgetting ${record.className} (${record.measure ?? 'sample'})`,
    );
    let measureSeconds = 0;
    t = performance.now();
    const suppressedBefore = card.suppressClasses ?? [];
    const weightHashes = weightsOf(manifest);
    if (ctx.beforeFrom) checkReusable(ctx.beforeFrom, weightHashes, manifest.revision, classIndex);
    // Outputs of these weights that training or the previous forget already computed.
    const beforeMemos = await loadOutputMemos(
      ctx.store,
      outputsKey(weightHashes, ctx.train, ctx.test),
      data,
      shape,
    );
    const reused = beforeMemos.train.count() + beforeMemos.test.count();
    const before =
      ctx.beforeFrom?.metrics.before ?? (await measure(model, suppressedBefore, beforeMemos));
    if (!ctx.beforeFrom && reused > 0) {
      status(`the store held the outputs of ${reused} samples measured earlier on these weights`);
    }
    measureSeconds += (performance.now() - t) / 1000;

    const outcome = await runForgetMethod(method, {
      model,
      train: ctx.train,
      normalise,
      classIndex,
      experts: plan.experts,
      epochs: record.epochs,
      learningRate: record.learningRate,
      batchSize: record.batchSize,
      loss: record.loss,
      lambda: record.lambda,
      retainFraction: record.retainFraction,
      anchor: record.anchor ?? 0,
      seed: record.seed,
      recipe: trainingRecipe(readTrainingRecord(manifest)),
      routing,
      ...(caches ? { cache: caches.train } : {}),
      ...(ctx.onStep ? { onStep: ctx.onStep } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...(ctx.remoteExperts && targeted ? { remoteExperts: ctx.remoteExperts } : {}),
    });
    if (outcome.model !== model) {
      model.dispose();
      model = outcome.model;
    }
    const suppressClasses = [
      ...new Set([
        ...suppressedBefore,
        ...outcome.suppressClasses,
        ...(record.maskOutput ? [classIndex] : []),
      ]),
    ].sort((a, b) => a - b);

    const beforeHashes = weightHashes;
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
      outputsKey(afterHashes, ctx.train, ctx.test),
      data,
      shape,
    );
    const after = await measure(model, suppressClasses, afterMemos);
    measureSeconds += (performance.now() - t) / 1000;
    const receipt: ForgetReceipt = {
      schema: 1,
      requestId,
      createdAt: new Date().toISOString(),
      request: record,
      mode: 'approximate',
      plan,
      expertsRetrained: targeted ? plan.experts : expertsOf(outcome.parts),
      suppressClasses,
      metrics: { before, after },
      timings: {
        planSeconds,
        forgetSeconds: outcome.seconds,
        measureSeconds,
        totalSeconds: (performance.now() - started) / 1000,
      },
      ...receiptOfRun(outcome, { before: beforeHashes, after: afterHashes }, manifest.revision),
    };
    const receiptRef = await storeReceipt(ctx.store, receipt);
    const newCard: ModelCard = { ...card, config: model.config, suppressClasses };
    const entry: ForgottenRecord = { classIndex, className: record.className, requestId, method };
    const ledgerRef = await appendErasures(ctx.store, prepared.ledger, [
      { requestId, receipt: receiptRef, mode: 'approximate', classes: [record.className] },
    ]);
    await publishModel(ctx.store, newCard, refs, {
      objects: { [receiptObjectName(requestId)]: receiptRef, [LEDGER_OBJECT]: ledgerRef },
      attributes: {
        forgotten: [...forgotten, entry] as unknown as JsonValue,
        ...forgetRateAttribute(manifest, forgetRateKey('class', method), requestId, model, receipt),
      },
      expectRevision: manifest.revision,
    });
    // A cache: a failure to write it costs the next forget a measurement pass, nothing else.
    await saveOutputMemos(ctx.store, afterMemos)
      .then(() => pruneOutputMemos(ctx.store, afterMemos.key))
      .catch((error: unknown) =>
        status(`note: could not store the measured outputs for reuse (${String(error)})`),
      );
    const residual = residualClassWarning(receipt);
    if (residual) (ctx.onWarning ?? status)(residual);
    return receipt;
  } finally {
    model.dispose();
  }
}

/**
 * Forgotten-class test accuracy (%, unmasked) above which the retrained weights still recognise
 * the class: a model trained without it scores about 0, and the benchmark's forgets at most 0.8.
 */
export const RESIDUAL_CLASS_ACCURACY = 5;

/**
 * The warning a class forget's own evidence calls for: its weights still recognise the class
 * (a short recipe on a model it could not move far enough). `mask` keeps the weights by design.
 */
export function residualClassWarning(receipt: ForgetReceipt): string | undefined {
  const left = receipt.metrics.after.unmasked.forgottenClassTestAccuracy;
  if (receipt.request.method === 'mask' || !(left > RESIDUAL_CLASS_ACCURACY)) return undefined;
  return (
    `warning: the weights still recognise ${receipt.request.className} in ${left.toFixed(1)}% of its ` +
    `test images (a model trained without it: about 0%); the erasure ledger holds the class, so ` +
    `the next training on this store leaves it out`
  );
}

/** Rejects numbers no recipe can run with: NaN, infinities, negative or absurd sizes. */
export function checkRecipeNumbers(
  request: Pick<
    ClassForgetRequest,
    'epochs' | 'learningRate' | 'lambda' | 'retainFraction' | 'anchor' | 'batchSize' | 'seed'
  >,
): void {
  const check = (
    name: string,
    value: number | undefined,
    ok: (v: number) => boolean,
    range: string,
  ): void => {
    if (value !== undefined && !(Number.isFinite(value) && ok(value))) {
      throw new ForgetRequestError(
        `${name} must be ${range}, got ${String(value).slice(0, 40)}`,
        'invalid-argument',
      );
    }
  };
  const integer = (v: number): boolean => Number.isInteger(v);
  check(
    'epochs',
    request.epochs,
    (v) => integer(v) && v >= 1 && v <= 1000,
    'an integer in [1, 1000]',
  );
  check('learning rate', request.learningRate, (v) => v > 0 && v <= 1, 'in (0, 1]');
  check('lambda', request.lambda, (v) => v >= 0 && v <= 1000, 'in [0, 1000]');
  check('retain fraction', request.retainFraction, (v) => v > 0 && v <= 1, 'in (0, 1]');
  check('anchor', request.anchor, (v) => v >= 0 && v <= 1000, 'in [0, 1000]');
  check(
    'batch size',
    request.batchSize,
    (v) => integer(v) && v >= 1 && v <= 65536,
    'an integer in [1, 65536]',
  );
  check('seed', request.seed, (v) => integer(v) && Math.abs(v) <= 2 ** 31, 'a 32-bit integer');
}

/** What a class forget with this recipe and plan retrains (the estimate's input). */
function classForgetWork(
  record: ClassForgetRequestRecord,
  plan: ClassForgetPlan,
  ctx: ClassForgetContext,
): ForgetWork {
  const retained = ctx.train.size - plan.samples;
  const targeted = record.method === 'targeted';
  const trainingSamples = targeted
    ? plan.samples + Math.max(1, Math.round(retained * record.retainFraction))
    : record.method === 'retrain' || record.method === 'finetune'
      ? retained
      : record.method === 'mask'
        ? 0
        : record.method === 'gradient-ascent'
          ? plan.samples
          : ctx.train.size;
  return {
    trainingSamples,
    measureThreads: ctx.measureThreads ?? 1,
    epochs: record.method === 'mask' ? 0 : record.epochs,
    expertsRetrained: targeted
      ? plan.experts.length
      : record.method === 'mask'
        ? 0
        : plan.activations.length,
    teacherSamples: targeted ? trainingSamples : 0,
  };
}

/**
 * The samples each measurement runs the model on, and how many of them the "before" finds in
 * the store's output memo (or in the receipt it reuses) instead of computing.
 */
async function measuredOutputs(
  ctx: ClassForgetContext,
  record: ClassForgetRequestRecord,
  weights: Record<string, string>,
  model: MoEModel,
): Promise<MeasuredOutputs> {
  const positions = measurePositions(
    ctx.train,
    record.classIndex,
    record.measure ?? 'sample',
    record.seed,
  );
  if (ctx.beforeFrom) {
    const all = positions.length + ctx.test.size;
    return { measuredSamples: all, measuredBeforeReused: all };
  }
  return memoCoverage(
    ctx.store,
    outputsKey(weights, ctx.train, ctx.test),
    { train: ctx.train, test: ctx.test },
    { classes: model.config.numClasses, topK: model.config.topK },
    positions,
  );
}

function resolveClass(requested: string, classes: string[]): number {
  const byName = classes.indexOf(requested);
  if (byName >= 0) return byName;
  const n = Number(requested);
  if (/^\d+$/.test(requested) && n < classes.length) return n;
  throw new ForgetRequestError(
    `unknown class ${JSON.stringify(requested)} (classes: ${classes.join(', ')})`,
    'not-found',
  );
}

function checkReusable(
  receipt: ForgetReceipt,
  weights: Record<string, string>,
  revision: number,
  classIndex: number,
): void {
  const same =
    receipt.request.classIndex === classIndex &&
    receipt.manifest.before === revision &&
    JSON.stringify(receipt.weights.before) === JSON.stringify(weights);
  if (!same) {
    throw new ForgetRequestError(
      `receipt ${receipt.requestId} measured another model or class; its "before" metrics cannot be reused`,
      'invalid-argument',
    );
  }
}

function checkData(ctx: ClassForgetContext, card: ModelCard): void {
  for (const ds of [ctx.train, ctx.test]) {
    if (ds.classes.join('\n') !== card.classes.join('\n')) {
      throw new ForgetRequestError(
        `the ${ds.split} data has classes [${ds.classes.join(', ')}], the stored model [${card.classes.join(', ')}]`,
        'failed-precondition',
      );
    }
  }
}

/** The recipe the stored model was trained with (the oracle retrains with it). */
export function trainingRecipe(t: TrainingRecord | undefined): TrainingRecipe {
  // Models stored before a field was recorded were trained with the then defaults.
  return {
    epochs: t?.epochs ?? 10,
    batchSize: t?.batchSize ?? 128,
    learningRate: t?.learningRate ?? 0.003,
    schedule: t?.schedule ?? 'one-cycle',
    weightDecay: t?.weightDecay ?? 0.0005,
    augment: t?.augment !== false,
    seed: t?.seed ?? 0,
  };
}
