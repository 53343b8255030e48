import {
  type Manifest,
  ManifestStore,
  type ObjectRef,
  type ObjectStore,
  putContent,
} from '@lethe/store';
import { z } from 'zod';
import { readNamedJson } from './stored-json';

// The one owner of the stored receipt (`receipt/<request id>` in the manifest): its schema, its
// writer and its readers. Three kinds share the name space: a class forget and a sample forget
// of a joint model (approximate retraining, libs/unlearning) and a sisa replay (exact,
// libs/sisa). Both libraries depend on this one, so the schema lives here with the ledger that
// names every receipt. The stored JSON is what those writers always wrote; nothing is added.

/** Class forget methods a receipt can record. */
export const FORGET_METHODS = [
  'targeted',
  'retrain',
  'finetune',
  'gradient-ascent',
  'random-label',
  'mask',
] as const;
export type ForgetMethod = (typeof FORGET_METHODS)[number];

/** Losses of targeted class forgetting. */
export const UNLEARNING_LOSSES = ['complement-ce', 'random-label', 'distill'] as const;
export type UnlearningLoss = (typeof UNLEARNING_LOSSES)[number];

/** Sample forget methods of a joint model (libs/unlearning's sample-forget-methods says each). */
export const SAMPLE_FORGET_METHODS = [
  'finetune',
  'neggrad+',
  'scrub',
  'l1-sparse',
  'retrain',
] as const;
export type SampleForgetMethod = (typeof SAMPLE_FORGET_METHODS)[number];

/** What before/after measurements ran on: all retained samples, or a bounded draw. */
export const MEASURE_MODES = ['sample', 'full'] as const;
export type MeasureMode = (typeof MEASURE_MODES)[number];

/** A measured number: JSON writes NaN (nothing to measure, e.g. a class with no test samples) as null. */
const real = z
  .number()
  .nullable()
  .transform((v) => v ?? Number.NaN);
const count = z.number().int().nonnegative();
const hashes = z.record(z.string(), z.string());
const revisions = z.object({ before: count, after: count });
const epochHistory = z.array(
  z.object({ epoch: count, loss: real, accuracy: real, images: count, seconds: z.number() }),
);
const frozenExpertPasses = z.object({ computed: count, reused: count }).optional();

// Key order follows the writers': a parsed record prints as it was stored.

/** What a class forget was asked, normalised (class resolved to its index and name). */
export const ClassForgetRequestRecordSchema = z.object({
  kind: z.literal('class'),
  classIndex: count,
  className: z.string(),
  method: z.enum(FORGET_METHODS),
  loss: z.enum(UNLEARNING_LOSSES),
  epochs: count,
  learningRate: z.number(),
  lambda: z.number(),
  retainFraction: z.number(),
  /** Router anchor weight (absent in receipts made before it existed: 0). */
  anchor: z.number().optional(),
  select: z.string(),
  maskOutput: z.boolean(),
  batchSize: count,
  seed: z.number().int(),
  /** What before/after were measured on (absent in receipts made before: full). */
  measure: z.enum(MEASURE_MODES).optional(),
});

/** What a class forget will retrain, what that disturbs, and what it should cost. */
export const ClassForgetPlanSchema = z.object({
  classIndex: count,
  className: z.string(),
  /** Training samples of the class the router was run on. */
  samples: z.number(),
  /** Per expert: how often it was among a class sample's top k. */
  activations: z.array(z.number()),
  rule: z.string(),
  experts: z.array(count),
  /** Share of the class's activations the chosen experts receive. */
  coverage: real,
  /**
   * Per chosen expert (same order as `experts`): % of the other classes' training slots it
   * carries — how much retained traffic retraining it puts at risk.
   */
  expertCollateral: z.array(real),
  /** % of the other classes' training slots the chosen experts carry together. */
  collateral: real,
  /** Retained training samples routed to at least one chosen expert. */
  retainedRouted: count,
});

const measuredOnFields = {
  mode: z.enum(MEASURE_MODES),
  /** Training samples forgotten (always all of them). */
  trainForgotten: count,
  /** Retained training samples measured, of `trainRetainedOf`. */
  trainRetained: count,
  trainRetainedOf: count,
  test: count,
};

/** The samples behind a class measurement: `sample` bounds the retained training samples. */
export const MeasuredOnSchema = z.object({
  ...measuredOnFields,
  /** Samples the feature probe was fitted on, and forgotten-class test samples it scored. */
  probe: z.object({ fit: count, test: count }).optional(),
});

/** Evidence about one class in one model; percentages 0–100 (see docs/metrics.md). */
export const ForgetMetricsSchema = z.object({
  /** 100 − accuracy on the class's training samples. */
  ua: real,
  /** Accuracy on the retained training samples. */
  ra: real,
  /** Test accuracy on the other classes. */
  ta: real,
  forgottenClassTestAccuracy: real,
  testAccuracy: real,
  perClassTest: z.array(real),
  /** % of the class's training samples a confidence-based membership attack calls non-members. */
  miaEfficacy: real,
  miaAttackAccuracy: real,
  /**
   * % of the class's test samples a linear probe on the model's internal features (before any
   * output mask) still recognises as the class; only a `full` measurement fits the probe.
   */
  featureProbe: real.optional(),
  featureProbeHeldOutAccuracy: real.optional(),
  /**
   * UA, forgotten-class test accuracy and MIA-Efficacy on the raw outputs, before any
   * serving-time mask: what the weights still know. Equal to the masked values when no class is
   * suppressed; for `mask` they stay at the original model's.
   */
  unmasked: z.object({ ua: real, forgottenClassTestAccuracy: real, miaEfficacy: real }),
  /** [class][expert] routing counts on the test set. */
  routingTest: z.array(z.array(z.number())),
  /** What the numbers were computed on (sample counts). */
  measuredOn: MeasuredOnSchema,
  seconds: z.number(),
});

/** The proof of one completed class forget (approximate: experts and router retrained). */
export const ClassForgetReceiptSchema = z.looseObject({
  schema: z.literal(1),
  requestId: z.string(),
  createdAt: z.string(),
  request: ClassForgetRequestRecordSchema,
  mode: z.literal('approximate'),
  plan: ClassForgetPlanSchema,
  expertsRetrained: z.array(count),
  /** Model parts whose weights changed (router, expert/i). */
  partsChanged: z.array(z.string()),
  /** SHA-256 of each part's weights object, before and after. */
  weights: z.object({ before: hashes, after: hashes }),
  manifest: revisions,
  /** Output classes suppressed at serving time after this request. */
  suppressClasses: z.array(count),
  metrics: z.object({ before: ForgetMetricsSchema, after: ForgetMetricsSchema }),
  timings: z.object({
    planSeconds: z.number(),
    forgetSeconds: z.number(),
    measureSeconds: z.number(),
    totalSeconds: z.number(),
  }),
  engine: z.string(),
  /** Per retraining epoch: mean loss, accuracy on its batches, images seen, seconds. */
  history: epochHistory,
  /** Targeted only: frozen-expert forward passes computed vs served from the cache. */
  frozenExpertPasses,
});

/** What a sample forget of a joint model was asked, normalised: subjects expanded, recipe filled. */
export const SampleForgetRequestRecordSchema = z.object({
  kind: z.literal('samples'),
  /** Every sample forgotten: the ones named and those of the subjects, sorted. */
  sampleIds: z.array(z.string()),
  subjects: z.array(z.string()),
  method: z.enum(SAMPLE_FORGET_METHODS),
  epochs: count,
  learningRate: z.number(),
  lambda: z.number(),
  /**
   * neggrad+: weight of the anchor, KL(original outputs ‖ new outputs) on retained samples.
   * Absent for the other methods and in records made before it existed (no anchor).
   */
  anchor: z.number().optional(),
  retainFraction: z.number(),
  batchSize: count,
  seed: z.number().int(),
  measure: z.enum(MEASURE_MODES),
});

/** What a sample forget retrains, from the stored routing lineage, and what that disturbs. */
export const SampleForgetPlanSchema = z.object({
  samples: count,
  /** Experts any of the samples was routed to in any recorded epoch (sorted). */
  experts: z.array(count),
  /** Per expert: how many of the samples it saw in some epoch. */
  seenBy: z.array(count),
  /** Epochs of routing the plan was read from (training's, then earlier forgets'). */
  lineageEpochs: count,
  /** Retained samples the last recorded epoch routed to a planned expert. */
  retainedRouted: count,
  /** % of the retained samples' routing slots (last recorded epoch) the planned experts carry. */
  collateral: real,
});

/**
 * Evidence about a set of forgotten training samples in one model; percentages 0–100. The
 * definitions are OPTML's for random-sample forgetting (Jia et al. 2023): a retrained model
 * treats its forgotten samples as unseen data, so UA and MIA-Efficacy are read against what the
 * retrain oracle scores, not against 100.
 */
export const SampleForgetMetricsSchema = z.object({
  /** 100 − accuracy on the forgotten training samples. */
  ua: real,
  /** Accuracy on the retained training samples measured. */
  ra: real,
  /** Accuracy on the test split (every class). */
  ta: real,
  /** % of the forgotten samples a confidence-based membership attack calls non-members. */
  miaEfficacy: real,
  miaAttackAccuracy: real,
  measuredOn: z.object(measuredOnFields),
  seconds: z.number(),
});

/** The proof of one completed sample forget on a joint model (approximate, not a replay). */
export const SampleForgetReceiptSchema = z.looseObject({
  schema: z.literal(1),
  requestId: z.string(),
  createdAt: z.string(),
  request: SampleForgetRequestRecordSchema,
  mode: z.literal('approximate'),
  plan: SampleForgetPlanSchema,
  expertsRetrained: z.array(count),
  partsChanged: z.array(z.string()),
  weights: z.object({ before: hashes, after: hashes }),
  manifest: revisions,
  /** UA, RA, TA and MIA-Efficacy on the forgotten samples, before and after. */
  metrics: z.object({ before: SampleForgetMetricsSchema, after: SampleForgetMetricsSchema }),
  /**
   * neggrad+: the loss at which a forgotten sample's ascent stopped — the model's mean loss on
   * the test split before the forget (receipts before 2026-12-06 stopped at ln C and lack it).
   */
  ascentStop: z.number().optional(),
  timings: z.object({
    forgetSeconds: z.number(),
    measureSeconds: z.number(),
    totalSeconds: z.number(),
  }),
  engine: z.string(),
  history: epochHistory,
  frozenExpertPasses,
});

/** A sisa forget request's receipt: what was replayed, from which checkpoint, and the hashes. */
export const SisaReceiptSchema = z.looseObject({
  schema: z.literal(1),
  requestId: z.string(),
  createdAt: z.string(),
  mode: z.literal('exact'),
  /** `subjects`: the data subjects the sample ids were expanded from, when asked by subject. */
  request: z.object({
    kind: z.literal('samples'),
    sampleIds: z.array(z.string()),
    subjects: z.array(z.string()).optional(),
  }),
  /**
   * The batch this request was replayed in (libs/sisa's SisaForgetQueue): every request id
   * published in the same revision and how many distinct samples they removed together. `sisa`,
   * `weights`, `checkpointsDeleted` and `timings` describe that one shared replay. Absent in
   * receipts written before batching.
   */
  batch: z
    .object({
      /** Names the replay: the revision it published and a hash of its request ids. */
      id: z.string().optional(),
      requestIds: z.array(z.string()),
      samples: count,
    })
    .optional(),
  sisa: z.object({
    shards: z.array(
      z.object({
        shard: count,
        slices: count,
        slicesReplayed: z.array(count),
        samplesRemoved: count,
        restoredCheckpointSha256: z.string(),
        checkpointSha256Before: z.array(z.string()),
        checkpointSha256After: z.array(z.string()),
      }),
    ),
    routerEpochs: count,
  }),
  weights: z.object({ before: hashes, after: hashes }),
  manifest: revisions,
  /** Checkpoints deleted because their lineage held a forgotten sample. */
  checkpointsDeleted: count,
  timings: z.object({
    replaySeconds: z.number(),
    routerSeconds: z.number(),
    totalSeconds: z.number(),
  }),
});

// The types name the known fields only; a receipt read keeps any top-level field a newer writer
// added (the object is loose), so `--json` and an idempotent re-send return it whole. Nested
// records drop what they do not know.
type Known<S extends z.ZodObject> = z.infer<z.ZodObject<S['shape']>>;

export type ClassForgetRequestRecord = z.infer<typeof ClassForgetRequestRecordSchema>;
export type ClassForgetPlan = z.infer<typeof ClassForgetPlanSchema>;
export type MeasuredOn = z.infer<typeof MeasuredOnSchema>;
export type ForgetMetrics = z.infer<typeof ForgetMetricsSchema>;
export type SampleForgetRequestRecord = z.infer<typeof SampleForgetRequestRecordSchema>;
export type SampleForgetPlan = z.infer<typeof SampleForgetPlanSchema>;
export type SampleForgetMetrics = z.infer<typeof SampleForgetMetricsSchema>;
export type ClassForgetReceipt = Known<typeof ClassForgetReceiptSchema>;
export type SampleForgetReceipt = Known<typeof SampleForgetReceiptSchema>;
export type SisaReceipt = Known<typeof SisaReceiptSchema>;
/** Any stored receipt; narrow with isClassReceipt, isSampleForgetReceipt or isSisaReceipt. */
export type StoredReceipt = ClassForgetReceipt | SampleForgetReceipt | SisaReceipt;
export type ReceiptKind = 'class' | 'samples' | 'sisa';

/** The fields that say which kind a receipt is. */
const ReceiptHeadSchema = z.object({
  mode: z.enum(['approximate', 'exact']),
  request: z.object({ kind: z.enum(['class', 'samples']) }),
});

const SCHEMAS = {
  class: ClassForgetReceiptSchema,
  samples: SampleForgetReceiptSchema,
  sisa: SisaReceiptSchema,
} as const;

/** An issue as one line: where, then what. */
const described = (issue: z.core.$ZodIssue | undefined): string =>
  `${issue?.path.length ? `${issue.path.join('.')}: ` : ''}${issue?.message}`;

/**
 * The stored receipt of any kind, as `receipt/<request id>` holds it. The kind is read first
 * (mode, request.kind) and the value checked against that kind's schema alone, so an issue
 * names the field that is wrong rather than "matches no kind".
 */
export const StoredReceiptSchema = z.unknown().transform((value, ctx): StoredReceipt => {
  const head = ReceiptHeadSchema.safeParse(value);
  if (!head.success) {
    for (const issue of head.error.issues) ctx.issues.push(asIssue(issue, value, 'receipt'));
    return z.NEVER;
  }
  const kind = receiptKind(head.data);
  const parsed = SCHEMAS[kind].safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues)
    ctx.issues.push(asIssue(issue, value, `${kind} receipt`));
  return z.NEVER;
});

const asIssue = (issue: z.core.$ZodIssue, input: unknown, what: string) => ({
  code: 'custom' as const,
  input,
  path: issue.path,
  message: `${issue.message} (${what})`,
});

/** Which kind a receipt is: a sisa replay is exact; the request says class or samples. */
export function receiptKind(receipt: z.infer<typeof ReceiptHeadSchema>): ReceiptKind {
  if (receipt.mode === 'exact') return 'sisa';
  return receipt.request.kind === 'class' ? 'class' : 'samples';
}

/** A class forget's receipt (joint model, approximate). */
export function isClassReceipt(receipt: StoredReceipt): receipt is ClassForgetReceipt {
  return receiptKind(receipt) === 'class';
}

/** A sample or subject forget's receipt on a joint model (approximate). */
export function isSampleForgetReceipt(receipt: StoredReceipt): receipt is SampleForgetReceipt {
  return receiptKind(receipt) === 'samples';
}

/** A sisa replay's receipt (exact). */
export function isSisaReceipt(receipt: StoredReceipt): receipt is SisaReceipt {
  return receiptKind(receipt) === 'sisa';
}

/**
 * A receipt out of JSON that did not come from the store (e.g. a file `lethe forget --json`
 * wrote). @throws Error saying which field is wrong.
 */
export function parseReceipt(value: unknown): StoredReceipt {
  const parsed = StoredReceiptSchema.safeParse(value);
  if (!parsed.success) throw new Error(`not a receipt: ${described(parsed.error.issues[0])}`);
  return parsed.data;
}

const REQUEST_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function assertValidRequestId(id: string): void {
  if (!REQUEST_ID.test(id)) {
    throw new Error(
      `invalid request id ${JSON.stringify(id)}: 1–64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit`,
    );
  }
}

export const RECEIPT_PREFIX = 'receipt/';

/** Manifest object name under which a receipt is published. */
export function receiptObjectName(requestId: string): string {
  return `${RECEIPT_PREFIX}${requestId}`;
}

/**
 * Stores a receipt of any kind (content-addressed; publishing it under `receipt/<id>` is the
 * caller's manifest update). A receipt the reader would refuse is a writer's bug: it is
 * checked, as the reader will see it, before anything is written.
 */
export async function storeReceipt(store: ObjectStore, receipt: StoredReceipt): Promise<ObjectRef> {
  const text = `${JSON.stringify(receipt, null, 2)}\n`;
  const parsed = StoredReceiptSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new Error(
      `receipt ${receipt.requestId} does not match its schema: ${described(parsed.error.issues[0])}`,
    );
  }
  return putContent(store, new TextEncoder().encode(text), { kind: 'receipt' });
}

/**
 * The receipt a manifest (default: the current one) publishes for a request id, if any;
 * hash-checked and parsed. @throws IntegrityError naming the object key when malformed.
 */
export async function readReceipt(
  store: ObjectStore,
  requestId: string,
  manifest?: Manifest,
): Promise<StoredReceipt | undefined> {
  const name = receiptObjectName(requestId);
  return (await readNamedJson(store, manifest, name, StoredReceiptSchema, `receipt ${requestId}`))
    ?.value;
}

/** Every receipt the current manifest publishes, of every kind, oldest first. */
export async function listReceipts(store: ObjectStore): Promise<StoredReceipt[]> {
  const manifest = await new ManifestStore(store).read();
  if (!manifest) return [];
  const receipts: StoredReceipt[] = [];
  for (const name of Object.keys(manifest.objects)) {
    if (!name.startsWith(RECEIPT_PREFIX)) continue;
    const receipt = await readReceipt(store, name.slice(RECEIPT_PREFIX.length), manifest);
    if (receipt) receipts.push(receipt);
  }
  return receipts.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** Whether two request records are the same request, whatever the order of their keys. */
export function sameRequest(a: object, b: object): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : v,
  );
}
