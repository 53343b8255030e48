import { randomUUID } from 'node:crypto';
import type { ChannelStats, Dataset } from '@lethe/data';
import { engineInfo } from '@lethe/engine';
import {
  loadModel,
  type ModelCard,
  publishModel,
  type StepProgress,
  storeParts,
} from '@lethe/model';
import type { JsonValue, ObjectStore } from '@lethe/store';
import { DEFAULT_SELECTION, formatSelectionRule, parseSelectionRule } from './expert-selection';
import {
  FORGET_METHODS,
  type ForgetMethod,
  type RemoteExperts,
  runForgetMethod,
  type TrainingRecipe,
  type UnlearningLoss,
} from './forget-methods';
import { planClassForget } from './forget-plan';
import { measureForgetting } from './measure-forgetting';
import {
  assertValidRequestId,
  type ClassForgetRequestRecord,
  type ForgetReceipt,
  readReceipt,
  receiptObjectName,
  storeReceipt,
} from './receipt';

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
  /** Targeted only: share of retained samples to retrain on (0 < F ≤ 1, default 1). */
  retainFraction?: number;
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
  const requestId = request.requestId ?? randomUUID();
  assertValidRequestId(requestId);
  const method = request.method ?? 'targeted';
  if (!FORGET_METHODS.includes(method)) {
    throw new ForgetRequestError(
      `unknown method ${method} (known: ${FORGET_METHODS.join(', ')})`,
      'invalid-argument',
    );
  }
  const fraction = request.retainFraction;
  if (fraction !== undefined && !(fraction > 0 && fraction <= 1)) {
    throw new ForgetRequestError(
      `retain fraction must be in (0, 1], got ${fraction}`,
      'invalid-argument',
    );
  }
  const targetedOnly = [request.select, request.loss, fraction].some((v) => v !== undefined);
  if (method !== 'targeted' && targetedOnly) {
    throw new ForgetRequestError(
      `--select, --loss and --retain-fraction apply to the targeted method only, not ${method}`,
      'invalid-argument',
    );
  }
  const rule = request.select ? parseSelectionRule(request.select) : DEFAULT_SELECTION;

  const loaded = await loadModel(ctx.store).catch((error: unknown) => {
    throw new ForgetRequestError(
      error instanceof Error ? error.message : String(error),
      'failed-precondition',
    );
  });
  let { model } = loaded;
  const { card, manifest } = loaded;
  try {
    const classIndex = resolveClass(request.class, card.classes);
    const existing = await readReceipt(ctx.store, requestId);
    const record: ClassForgetRequestRecord = {
      kind: 'class',
      classIndex,
      className: card.classes[classIndex]!,
      method,
      loss: request.loss ?? 'distill',
      epochs: request.epochs ?? 5,
      learningRate: request.learningRate ?? 1e-4,
      lambda: request.lambda ?? 1,
      retainFraction: request.retainFraction ?? 1,
      select: formatSelectionRule(rule),
      maskOutput: request.maskOutput ?? false,
      batchSize: request.batchSize ?? 128,
      seed: request.seed ?? 0,
    };
    if (existing) {
      if (JSON.stringify(existing.request) === JSON.stringify(record)) return existing;
      throw new ForgetRequestError(
        `request id ${requestId} was already used for a different request`,
        'already-exists',
      );
    }
    const forgotten = (manifest.attributes['forgotten'] ?? []) as unknown as ForgottenRecord[];
    const previous = forgotten.find((f) => f.classIndex === classIndex);
    if (previous) {
      throw new ForgetRequestError(
        `class ${record.className} was already forgotten (request ${previous.requestId}, method ${previous.method})`,
        'failed-precondition',
      );
    }
    checkData(ctx, card);
    const recipe = trainingRecipe(manifest.attributes['training']);

    status(
      ctx.beforeFrom
        ? `reusing the "before" metrics of receipt ${ctx.beforeFrom.requestId}`
        : `measuring the model before forgetting ${record.className}`,
    );
    let measureSeconds = 0;
    let t = performance.now();
    const suppressedBefore = card.suppressClasses ?? [];
    const weightHashes = Object.fromEntries(
      Object.entries(manifest.objects)
        .filter(([name]) => name === 'router' || name.startsWith('expert/'))
        .map(([name, ref]) => [name, ref.sha256]),
    );
    if (ctx.beforeFrom) checkReusable(ctx.beforeFrom, weightHashes, manifest.revision, classIndex);
    const before =
      ctx.beforeFrom?.metrics.before ??
      measureForgetting(
        model,
        ctx.train,
        ctx.test,
        classIndex,
        card.normalisation,
        suppressedBefore,
      );
    measureSeconds += (performance.now() - t) / 1000;

    t = performance.now();
    const plan = planClassForget(
      model,
      ctx.train,
      classIndex,
      card.normalisation as ChannelStats,
      rule,
    );
    const planSeconds = (performance.now() - t) / 1000;
    status(
      `plan: class ${record.className} activates experts ${plan.activations.map((n, e) => `e${e}:${n}`).join(' ')}; ` +
        (method === 'targeted'
          ? `retraining ${plan.experts.map((e) => `e${e}`).join(', ')} + router (${plan.rule})`
          : `method ${method}`),
    );
    const outcome = await runForgetMethod(method, {
      model,
      train: ctx.train,
      normalise: card.normalisation as ChannelStats,
      classIndex,
      experts: plan.experts,
      epochs: record.epochs,
      learningRate: record.learningRate,
      batchSize: record.batchSize,
      loss: record.loss,
      lambda: record.lambda,
      retainFraction: record.retainFraction,
      seed: record.seed,
      recipe,
      ...(ctx.onStep ? { onStep: ctx.onStep } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...(ctx.remoteExperts && method === 'targeted' ? { remoteExperts: ctx.remoteExperts } : {}),
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

    status('measuring the model after forgetting');
    t = performance.now();
    const after = measureForgetting(
      model,
      ctx.train,
      ctx.test,
      classIndex,
      card.normalisation,
      suppressClasses,
    );
    measureSeconds += (performance.now() - t) / 1000;

    const refs = await storeParts(ctx.store, model, outcome.parts);
    const beforeHashes = weightHashes;
    const afterHashes = {
      ...beforeHashes,
      ...Object.fromEntries(Object.entries(refs).map(([p, r]) => [p, r!.sha256])),
    };
    const receipt: ForgetReceipt = {
      schema: 1,
      requestId,
      createdAt: new Date().toISOString(),
      request: record,
      mode: 'approximate',
      plan,
      expertsRetrained:
        method === 'targeted'
          ? plan.experts
          : outcome.parts.filter((p) => p !== 'router').map((p) => Number(p.slice(7))),
      partsChanged: Object.keys(afterHashes).filter((p) => afterHashes[p] !== beforeHashes[p]),
      weights: { before: beforeHashes, after: afterHashes },
      manifest: { before: manifest.revision, after: manifest.revision + 1 },
      suppressClasses,
      metrics: { before, after },
      timings: {
        planSeconds,
        forgetSeconds: outcome.seconds,
        measureSeconds,
        totalSeconds: (performance.now() - started) / 1000,
      },
      engine: engineInfo()?.engine ?? 'unknown',
      history: outcome.history.map(({ epoch, loss, accuracy, images, seconds }) => ({
        epoch,
        loss,
        accuracy,
        images,
        seconds,
      })),
      ...(outcome.frozenExpertPasses ? { frozenExpertPasses: outcome.frozenExpertPasses } : {}),
    };
    const receiptRef = await storeReceipt(ctx.store, receipt);
    const newCard: ModelCard = { ...card, config: model.config, suppressClasses };
    const entry: ForgottenRecord = { classIndex, className: record.className, requestId, method };
    await publishModel(ctx.store, newCard, refs, {
      objects: { [receiptObjectName(requestId)]: receiptRef },
      attributes: { forgotten: [...forgotten, entry] as unknown as JsonValue },
      expectRevision: manifest.revision,
    });
    return receipt;
  } finally {
    model.dispose();
  }
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

function trainingRecipe(value: JsonValue | undefined): TrainingRecipe {
  const t = (value ?? {}) as Record<string, unknown>;
  const num = (k: string, fallback: number): number =>
    typeof t[k] === 'number' ? (t[k] as number) : fallback;
  return {
    epochs: num('epochs', 10),
    batchSize: num('batchSize', 128),
    learningRate: num('learningRate', 0.003),
    schedule: (t['schedule'] as TrainingRecipe['schedule']) ?? 'one-cycle',
    weightDecay: num('weightDecay', 0.0005),
    augment: t['augment'] !== false,
    seed: num('seed', 0),
  };
}
