import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { DATASET_SCHEMES, DataError } from '@lethe/data';
import { DEFAULT_ROUTER_NOISE, DEFAULT_SPECIALIZE_WEIGHT, PRESETS } from '@lethe/model';
import { DEFAULT_SISA_OPTIONS, defaultEpochs, defaultTopK } from '@lethe/sisa';
import {
  type DatasetSpec,
  type EvaluateRequest,
  ForgetMethod,
  LearningRateSchedule,
  type ListReceiptsRequest,
  type ListSamplesRequest,
  MeasureMode,
  type PredictRequest,
  Split,
  type StartTrainingRequest,
  type SubmitForgetRequest,
  TrainingMode,
  UnlearningLoss,
} from '@lethe/proto';
import { SubjectTableError } from '@lethe/ledger';
import { invalidArgument, notFound, RpcError } from '@lethe/rpc';
import {
  parseSelectionRule,
  type ForgetMethod as MethodName,
  type MeasureMode as MeasureModeName,
  type SampleForgetMethod,
  type UnlearningLoss as UnlearningLossName,
} from '@lethe/unlearning';
import type { TrainingRequest } from './training-request';

/**
 * The request contract of the public API, one function per request type: each checks every
 * field against the bounds coordinator.proto documents, fills in the documented defaults and
 * throws INVALID_ARGUMENT naming the field (or UNIMPLEMENTED for what is not built). Checks that
 * need the model or the store (a class name, a dataset's files) come after, in the services.
 * Values echoed in messages are cut to about 100 characters.
 */

const REQUEST_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SAMPLE_ID = /^[a-z0-9][a-z0-9._-]*:(train|test):\d+$/;
/** Longest dataset uri, class name, job id, sample id or page token the API reads. */
const MAX_URI = 4096;
const MAX_NAME = 256;
const MAX_SAMPLE_IDS = 50_000;
const MAX_SUBJECT_IDS = 1_000;
// As a subject table allows (libs/ledger), within the request contract's 256 characters.
const SUBJECT_ID = /^[\x21-\x7e]([\x20-\x7e]{0,254}[\x21-\x7e])?$/;
const MAX_IMAGES = 512;
const MAX_IMAGE_SIDE = 1024;

/** A value for an error message: JSON-quoted, cut to about 100 characters. */
export function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return text.length > 100 ? `${JSON.stringify(text.slice(0, 100))}…` : JSON.stringify(text);
}

/** Same request id and fingerprint: the same request (idempotent retry). */
export function fingerprint(request: unknown): string {
  return createHash('sha256').update(JSON.stringify(request)).digest('hex');
}

export function checkRequestId(id: string, required: boolean): void {
  if (id === '' && !required) return;
  if (!REQUEST_ID.test(id)) {
    throw invalidArgument(`request_id must match ^[a-z0-9][a-z0-9._-]{0,63}$, got ${quote(id)}`);
  }
}

/** A job id as the API hands them out; anything else cannot name a job. */
export function checkJobId(id: string): string {
  if (id === '') throw invalidArgument('job_id is required');
  if (id.length > 64) throw invalidArgument(`job_id is too long: ${quote(id)}`);
  return id;
}

/** Proto3's zero means "the default"; NaN is not zero (and `NaN || d` would hide it). */
const orDefault = (value: number, fallback: number): number => (value === 0 ? fallback : value);

/** An integer field with a default for 0 and a documented range. */
function integer(name: string, value: number, fallback: number, min: number, max: number): number {
  const v = orDefault(value, fallback);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw invalidArgument(`${name} must be ${min}..${max}, got ${quote(v)}`);
  }
  return v;
}

/** A float field: finite, within [min, max] (above min when `aboveMin`). */
function real(
  name: string,
  value: number,
  range: { min: number; max: number; aboveMin?: boolean },
): number {
  const low = range.aboveMin ? value > range.min : value >= range.min;
  if (!Number.isFinite(value) || !low || value > range.max) {
    const interval = `${range.aboveMin ? '(' : '['}${range.min}, ${range.max}]`;
    throw invalidArgument(`${name} must be a finite number in ${interval}, got ${quote(value)}`);
  }
  return value;
}

/** An enum field: one of the values the .proto declares. */
function known<E extends number>(
  name: string,
  value: E,
  values: Record<string, string | number>,
): E {
  if (typeof values[value] !== 'string' || value < 0) {
    throw invalidArgument(`${name}: unknown value ${quote(value)}`);
  }
  return value;
}

export function datasetUri(spec: DatasetSpec | undefined, field: string): string {
  const source = spec?.source;
  if (!source) throw invalidArgument(`${field}: a dataset source is required`);
  if (source.$case !== 'uri') {
    throw new RpcError(
      grpc.status.UNIMPLEMENTED,
      `${field}.object: datasets from store objects are not supported yet; use a uri`,
    );
  }
  const uri = source.value;
  if (uri.length > MAX_URI) throw invalidArgument(`${field}.uri is longer than ${MAX_URI}`);
  const colon = uri.indexOf(':');
  const scheme = colon < 0 ? '' : uri.slice(0, colon);
  if (!(DATASET_SCHEMES as readonly string[]).includes(scheme) || uri.length === colon + 1) {
    throw invalidArgument(
      `${field}.uri must be <scheme>:<dir> with scheme one of ${DATASET_SCHEMES.join(', ')}, got ${quote(uri)}`,
    );
  }
  known(`${field}.split`, spec!.split, Split);
  return uri;
}

/**
 * A dataset that failed to open, as a status: NOT_FOUND when its directory or files are
 * missing, INVALID_ARGUMENT when they are malformed; anything else is not the caller's fault.
 */
export function datasetError(uri: string, error: unknown): unknown {
  if (error instanceof DataError) {
    const missing = /missing|not found/i.test(error.problem);
    return (missing ? notFound : invalidArgument)(`dataset ${quote(uri)}: ${error.problem}`);
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return notFound(`dataset ${quote(uri)}: no such directory`);
  return error;
}

const SCHEDULES: Record<LearningRateSchedule, TrainingRequest['schedule']> = {
  [LearningRateSchedule.LEARNING_RATE_SCHEDULE_UNSPECIFIED]: 'one-cycle',
  [LearningRateSchedule.LEARNING_RATE_SCHEDULE_CONSTANT]: 'constant',
  [LearningRateSchedule.LEARNING_RATE_SCHEDULE_COSINE]: 'cosine',
  [LearningRateSchedule.LEARNING_RATE_SCHEDULE_ONE_CYCLE]: 'one-cycle',
  [LearningRateSchedule.UNRECOGNIZED]: 'one-cycle',
};

/** StartTraining with defaults filled in. */
export function normaliseTrainingRequest(request: StartTrainingRequest): TrainingRequest {
  checkRequestId(request.requestId, false);
  if (request.mode === TrainingMode.TRAINING_MODE_UNSPECIFIED) {
    throw invalidArgument('mode is required: TRAINING_MODE_JOINT or TRAINING_MODE_SISA');
  }
  known('mode', request.mode, TrainingMode);
  const sisaMode = request.mode === TrainingMode.TRAINING_MODE_SISA;
  if (request.sisa && !sisaMode) {
    throw invalidArgument('sisa options are only valid with TRAINING_MODE_SISA');
  }
  const dataset = datasetUri(request.dataset, 'dataset');
  if (request.dataset?.split === Split.SPLIT_TEST) {
    throw invalidArgument('dataset.split must be the train split');
  }
  const preset = request.preset || 'small';
  if (!Object.keys(PRESETS).includes(preset)) {
    throw invalidArgument(
      `preset: unknown ${quote(preset)} (known: ${Object.keys(PRESETS).join(', ')})`,
    );
  }
  const experts = integer('experts', request.experts, 4, 1, 64);
  const topK = request.topK || defaultTopK(sisaMode ? 'sisa' : 'joint', experts);
  if (topK > experts) throw invalidArgument(`top_k (${topK}) must not exceed experts (${experts})`);
  let sisa: TrainingRequest['sisa'];
  if (sisaMode) {
    const o = request.sisa;
    if (o && o.shards !== 0 && o.shards !== experts) {
      throw invalidArgument(`sisa.shards must be 0 or experts (${experts}), got ${o.shards}`);
    }
    sisa = {
      slices: integer('sisa.slices', o?.slices ?? 0, DEFAULT_SISA_OPTIONS.slices, 1, 64),
      routerEpochs: integer(
        'sisa.router_epochs',
        o?.routerEpochs ?? 0,
        DEFAULT_SISA_OPTIONS.routerEpochs,
        1,
        1000,
      ),
    };
  }
  return {
    mode: sisaMode ? 'sisa' : 'joint',
    ...(sisa ? { sisa } : {}),
    dataset,
    limit: request.dataset?.limit ?? 0,
    preset,
    experts,
    topK,
    epochs: integer('epochs', request.epochs, defaultEpochs(sisaMode ? 'sisa' : 'joint'), 1, 1000),
    batchSize: integer('batch_size', request.batchSize, 128, 1, 4096),
    learningRate: real('learning_rate', orDefault(request.learningRate, 0.003), {
      min: 0,
      max: 10,
      aboveMin: true,
    }),
    weightDecay: real('weight_decay', request.weightDecay ?? 0.0005, { min: 0, max: 1 }),
    schedule: SCHEDULES[known('schedule', request.schedule, LearningRateSchedule)],
    seed: request.seed,
    balanceWeight: real('balance_weight', request.balanceWeight ?? 0.1, { min: 0, max: 100 }),
    routerNoise: real('router_noise', request.routerNoise ?? DEFAULT_ROUTER_NOISE, {
      min: 0,
      max: 100,
    }),
    specializeWeight: real(
      'specialize_weight',
      request.specializeWeight ?? DEFAULT_SPECIALIZE_WEIGHT,
      {
        min: 0,
        max: 100,
      },
    ),
    augment: request.augment ?? true,
    ...(request.subjects === '' ? {} : { subjects: subjectsPath(request.subjects) }),
  };
}

/** A subject table's path: its file is read (and its rows checked) at admission, in the service. */
function subjectsPath(path: string): string {
  if (path.length > MAX_URI) throw invalidArgument(`subjects is longer than ${MAX_URI}`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) {
    throw invalidArgument(`subjects: a path without control characters, got ${quote(path)}`);
  }
  return path;
}

/**
 * A subject table that failed to load, as a status: INVALID_ARGUMENT naming the file and line
 * for a malformed table (or one naming samples the dataset lacks), NOT_FOUND for a missing
 * file; anything else is not the caller's fault.
 */
export function subjectTableError(path: string, error: unknown): unknown {
  if (error instanceof SubjectTableError) return invalidArgument(`subjects: ${error.message}`);
  const cause = error instanceof Error ? error.cause : undefined;
  const code = (cause as { code?: unknown } | null | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return notFound(`subjects: no such file ${quote(path)}`);
  }
  if (code === 'EISDIR') return invalidArgument(`subjects: ${quote(path)} is a directory`);
  return error;
}

const METHODS: Partial<Record<ForgetMethod, MethodName>> = {
  [ForgetMethod.FORGET_METHOD_UNSPECIFIED]: 'targeted',
  [ForgetMethod.FORGET_METHOD_TARGETED]: 'targeted',
  [ForgetMethod.FORGET_METHOD_RETRAIN]: 'retrain',
  [ForgetMethod.FORGET_METHOD_FINETUNE]: 'finetune',
  [ForgetMethod.FORGET_METHOD_GRADIENT_ASCENT]: 'gradient-ascent',
  [ForgetMethod.FORGET_METHOD_RANDOM_LABEL]: 'random-label',
  [ForgetMethod.FORGET_METHOD_MASK]: 'mask',
};

/** Samples and subjects of a joint model (libs/unlearning's sample-forget methods). */
const SAMPLE_METHODS: Partial<Record<ForgetMethod, SampleForgetMethod>> = {
  [ForgetMethod.FORGET_METHOD_FINETUNE]: 'finetune',
  [ForgetMethod.FORGET_METHOD_RETRAIN]: 'retrain',
  [ForgetMethod.FORGET_METHOD_NEGGRAD_PLUS]: 'neggrad+',
  [ForgetMethod.FORGET_METHOD_SCRUB]: 'scrub',
  [ForgetMethod.FORGET_METHOD_L1_SPARSE]: 'l1-sparse',
};

const LOSS_NAMES: Partial<Record<UnlearningLoss, UnlearningLossName>> = {
  [UnlearningLoss.UNLEARNING_LOSS_COMPLEMENT_CE]: 'complement-ce',
  [UnlearningLoss.UNLEARNING_LOSS_RANDOM_LABEL]: 'random-label',
  [UnlearningLoss.UNLEARNING_LOSS_DISTILL]: 'distill',
};

const MEASURES: Partial<Record<MeasureMode, MeasureModeName>> = {
  [MeasureMode.MEASURE_MODE_SAMPLE]: 'sample',
  [MeasureMode.MEASURE_MODE_FULL]: 'full',
};

/**
 * The parts of a forget request that do not depend on the model. Recipe fields the client left
 * unset stay undefined, so that libs/unlearning's DEFAULT_FORGET_RECIPE fills them in (and the
 * receipt records what it chose).
 */
export interface ForgetOptions {
  /**
   * A class method; `sisa-replay` (a sisa model's samples); or `samples`, a samples or subjects
   * target whose model decides (admission makes it `sisa-replay` on a sisa model).
   */
  method: MethodName | 'sisa-replay' | 'samples';
  /** `samples` on a joint model: the method the client named; unset, the library's default. */
  sampleMethod?: SampleForgetMethod;
  /** Samples target: the ids, sorted and without duplicates. */
  sampleIds?: string[];
  /** Subjects target: the subject ids, sorted and without duplicates (expanded at admission). */
  subjects?: string[];
  loss?: UnlearningLossName;
  select?: string;
  retainFraction?: number;
  anchor?: number;
  measure?: MeasureModeName;
  epochs?: number;
  learningRate?: number;
  lambda?: number;
  maskOutput: boolean;
  batchSize?: number;
  seed: number;
}

/**
 * A samples or subjects target. Which model it meets decides the method, so an unset one stays
 * `samples` without a sample method: a sisa model replays (the recipe fields are then ignored, a
 * replay uses the stored recipe), a joint model takes DEFAULT_SAMPLE_FORGET_RECIPE's method.
 */
function sampleTargetOptions(request: SubmitForgetRequest, field: string): ForgetOptions {
  if (request.maskOutput) throw invalidArgument('mask_output applies to a class target only');
  if (request.method === ForgetMethod.FORGET_METHOD_SISA_REPLAY) {
    return { method: 'sisa-replay', maskOutput: false, seed: 0 };
  }
  const unset = request.method === ForgetMethod.FORGET_METHOD_UNSPECIFIED;
  const sampleMethod = SAMPLE_METHODS[request.method];
  if (!unset && !sampleMethod) {
    throw invalidArgument(
      `${field} are forgotten by sisa replay (sisa model) or by finetune, retrain, neggrad+, scrub or l1-sparse (joint model), not ${ForgetMethod[request.method] ?? quote(request.method)}`,
    );
  }
  if (request.loss !== UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED || request.select) {
    throw invalidArgument(`loss and select apply to a class target only, not ${field}`);
  }
  // The anchor of a sample forget holds neggrad+'s retained outputs (the default method).
  if (request.anchor !== undefined && sampleMethod && sampleMethod !== 'neggrad+') {
    throw invalidArgument(
      `anchor applies to neggrad+ among the sample methods, not ${sampleMethod}`,
    );
  }
  const anchor =
    request.anchor === undefined
      ? undefined
      : real('anchor', request.anchor, { min: 0, max: 1000 });
  return {
    method: 'samples',
    ...(sampleMethod ? { sampleMethod } : {}),
    ...(anchor !== undefined ? { anchor } : {}),
    retainFraction: optionalPositive('retain_fraction', request.retainFraction, 1),
    measure: MEASURES[request.measure],
    epochs: optionalInteger('epochs', request.epochs, 1, 100),
    learningRate: optionalPositive('learning_rate', request.learningRate, 10),
    lambda: optionalPositive('lambda', request.lambda, 1000),
    maskOutput: false,
    batchSize: optionalInteger('batch_size', request.batchSize, 1, 4096),
    seed: request.seed,
  };
}

/** An integer field left at proto3's zero means "unset". */
function optionalInteger(
  name: string,
  value: number,
  min: number,
  max: number,
): number | undefined {
  return value === 0 ? undefined : integer(name, value, value, min, max);
}

/** A float field left at proto3's zero means "unset" (NaN is not zero and is refused). */
function optionalPositive(name: string, value: number, max: number): number | undefined {
  return value === 0 ? undefined : real(name, value, { min: 0, max, aboveMin: true });
}

export function normaliseForgetOptions(request: SubmitForgetRequest): ForgetOptions {
  checkRequestId(request.requestId, true);
  const target = request.target;
  if (!target) throw invalidArgument('a target is required: class_name, class_index or sample_ids');
  known('method', request.method, ForgetMethod);
  if (request.loss !== UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED && !LOSS_NAMES[request.loss]) {
    throw invalidArgument(`loss: unknown value ${quote(request.loss)}`);
  }
  if (request.measure !== MeasureMode.MEASURE_MODE_UNSPECIFIED && !MEASURES[request.measure]) {
    throw invalidArgument(`measure: unknown value ${quote(request.measure)}`);
  }
  if (target.$case === 'subjectIds') {
    const ids = target.value.ids;
    if (ids.length === 0) throw invalidArgument('subject_ids is empty');
    if (ids.length > MAX_SUBJECT_IDS) {
      throw invalidArgument(`subject_ids holds ${ids.length} ids; at most ${MAX_SUBJECT_IDS}`);
    }
    const bad = ids.find((id) => !SUBJECT_ID.test(id));
    if (bad !== undefined) throw invalidArgument(`malformed subject id ${quote(bad)}`);
    return { ...sampleTargetOptions(request, 'subjects'), subjects: [...new Set(ids)].sort() };
  }
  if (target.$case === 'sampleIds') {
    const ids = target.value.ids;
    if (ids.length === 0) throw invalidArgument('sample_ids is empty');
    if (ids.length > MAX_SAMPLE_IDS) {
      throw invalidArgument(`sample_ids holds ${ids.length} ids; at most 50,000`);
    }
    const bad = ids.find((id) => id.length > MAX_NAME || !SAMPLE_ID.test(id));
    if (bad !== undefined) throw invalidArgument(`malformed sample id ${quote(bad)}`);
    return { ...sampleTargetOptions(request, 'sample_ids'), sampleIds: [...new Set(ids)].sort() };
  }
  if (target.$case === 'className') {
    if (target.value === '') throw invalidArgument('class_name is empty');
    if (target.value.length > MAX_NAME) {
      throw invalidArgument(`class_name is longer than ${MAX_NAME}: ${quote(target.value)}`);
    }
  }
  if (request.method === ForgetMethod.FORGET_METHOD_SISA_REPLAY) {
    throw invalidArgument('FORGET_METHOD_SISA_REPLAY forgets samples: give sample_ids');
  }
  if (SAMPLE_METHODS[request.method] && !METHODS[request.method]) {
    throw invalidArgument(
      `${ForgetMethod[request.method]} forgets samples or subjects of a joint model: give sample_ids or subject_ids`,
    );
  }
  const method = METHODS[request.method];
  if (!method) throw invalidArgument(`method: unknown value ${quote(request.method)}`);
  if (
    method !== 'targeted' &&
    (request.loss !== UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED ||
      request.select ||
      request.retainFraction !== 0 ||
      request.anchor !== undefined)
  ) {
    throw invalidArgument(
      `loss, select, retain_fraction and anchor apply to the targeted method only, not ${method}`,
    );
  }
  const retainFraction = optionalPositive('retain_fraction', request.retainFraction, 1);
  const anchor =
    request.anchor === undefined
      ? undefined
      : real('anchor', request.anchor, { min: 0, max: 1000 });
  if (request.select) {
    if (request.select.length > 64) throw invalidArgument(`select: ${quote(request.select)}`);
    try {
      parseSelectionRule(request.select);
    } catch (error) {
      throw invalidArgument(
        `select: ${quote(error instanceof Error ? error.message : String(error))}`,
      );
    }
  }
  // Unset fields stay undefined: JSON (the job's record and its fingerprint) leaves them out.
  return {
    method,
    loss: LOSS_NAMES[request.loss],
    retainFraction,
    anchor,
    measure: MEASURES[request.measure],
    select: request.select || undefined,
    epochs: optionalInteger('epochs', request.epochs, 1, 100),
    learningRate: optionalPositive('learning_rate', request.learningRate, 10),
    lambda: optionalPositive('lambda', request.lambda, 1000),
    maskOutput: request.maskOutput,
    batchSize: optionalInteger('batch_size', request.batchSize, 1, 4096),
    seed: request.seed,
  };
}

/** An Evaluate request checked: a dataset to evaluate on (none: the model's own), batch, mask. */
export interface EvaluateSpec {
  dataset?: { uri: string; split: Split; limit: number };
  batchSize: number;
  ignoreOutputMask: boolean;
}

/** Evaluate: the dataset (or the model's own), batch size and mask choice. */
export function normaliseEvaluateRequest(request: EvaluateRequest): EvaluateSpec {
  const batchSize = integer('batch_size', request.batchSize, 256, 1, 4096);
  if (!request.dataset) return { batchSize, ignoreOutputMask: request.ignoreOutputMask };
  const uri = datasetUri(request.dataset, 'dataset');
  return {
    dataset: { uri, split: request.dataset.split, limit: request.dataset.limit },
    batchSize,
    ignoreOutputMask: request.ignoreOutputMask,
  };
}

/** Predict: 1..512 images, each with as many bytes as its stated size. */
export function checkPredictRequest(request: PredictRequest): void {
  const images = request.images;
  if (images.length === 0 || images.length > MAX_IMAGES) {
    throw invalidArgument(`images: send 1 to ${MAX_IMAGES} images, got ${images.length}`);
  }
  images.forEach((image, i) => {
    const { height, width, channels } = image;
    if (
      height < 1 ||
      width < 1 ||
      height > MAX_IMAGE_SIDE ||
      width > MAX_IMAGE_SIDE ||
      channels < 1 ||
      channels > 4
    ) {
      throw invalidArgument(
        `images[${i}] is ${height}x${width}x${channels}: sides 1..${MAX_IMAGE_SIDE}, channels 1..4`,
      );
    }
    if (image.data.length !== height * width * channels) {
      throw invalidArgument(
        `images[${i}].data holds ${image.data.length} bytes, expected ${height * width * channels}`,
      );
    }
  });
}

/** ListReceipts: page size (0 → 50, above 500 → 500) and the offset its token carries. */
/** ListSamples: exactly one selector, names within bounds. */
export function normaliseListSamples(
  request: ListSamplesRequest,
): { subject: string } | { className: string } | { shard: number } {
  const selector = request.selector;
  if (!selector) throw invalidArgument('a selector is required: subject, class_name or shard');
  if (selector.$case === 'shard') return { shard: selector.value };
  if (selector.value === '' || selector.value.length > MAX_NAME) {
    throw invalidArgument(
      `${selector.$case === 'subject' ? 'subject' : 'class_name'}: ${quote(selector.value)}`,
    );
  }
  return selector.$case === 'subject' ? { subject: selector.value } : { className: selector.value };
}

export function normaliseListReceipts(request: ListReceiptsRequest): {
  size: number;
  start: number;
} {
  const size = Math.min(500, request.pageSize || 50);
  if (!request.pageToken) return { size, start: 0 };
  const match = /^offset:(\d{1,9})$/.exec(request.pageToken);
  if (!match) {
    throw invalidArgument(`page_token ${quote(request.pageToken)} was not issued here`);
  }
  return { size, start: Number(match[1]) };
}
