import { createHash } from 'node:crypto';
import { DATASET_SCHEMES } from '@lethe/data';
import { PRESETS } from '@lethe/model';
import {
  type DatasetSpec,
  ForgetMethod,
  LearningRateSchedule,
  type StartTrainingRequest,
  type SubmitForgetRequest,
  TrainingMode,
  UnlearningLoss,
} from '@lethe/proto';
import { invalidArgument, RpcError } from '@lethe/rpc';
import {
  parseSelectionRule,
  type ForgetMethod as MethodName,
  type UnlearningLoss as UnlearningLossName,
} from '@lethe/unlearning';
import * as grpc from '@grpc/grpc-js';
import type { TrainingRequest } from '../training/training-request';

const REQUEST_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SAMPLE_ID = /^[a-z0-9][a-z0-9._-]*:(train|test):\d+$/;

export function checkRequestId(id: string, required: boolean): void {
  if (id === '' && !required) return;
  if (!REQUEST_ID.test(id)) {
    throw invalidArgument(
      `request_id must match ^[a-z0-9][a-z0-9._-]{0,63}$, got ${JSON.stringify(id)}`,
    );
  }
}

/** Same request id and fingerprint: the same request (idempotent retry). */
export function fingerprint(request: unknown): string {
  return createHash('sha256').update(JSON.stringify(request)).digest('hex');
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
  const colon = uri.indexOf(':');
  const scheme = colon < 0 ? '' : uri.slice(0, colon);
  if (!(DATASET_SCHEMES as readonly string[]).includes(scheme) || uri.length === colon + 1) {
    throw invalidArgument(
      `${field}.uri must be <scheme>:<dir> with scheme one of ${DATASET_SCHEMES.join(', ')}, got ${JSON.stringify(uri)}`,
    );
  }
  return uri;
}

const SCHEDULES: Record<LearningRateSchedule, TrainingRequest['schedule']> = {
  [LearningRateSchedule.LEARNING_RATE_SCHEDULE_UNSPECIFIED]: 'one-cycle',
  [LearningRateSchedule.LEARNING_RATE_SCHEDULE_CONSTANT]: 'constant',
  [LearningRateSchedule.LEARNING_RATE_SCHEDULE_COSINE]: 'cosine',
  [LearningRateSchedule.LEARNING_RATE_SCHEDULE_ONE_CYCLE]: 'one-cycle',
  [LearningRateSchedule.UNRECOGNIZED]: 'one-cycle',
};

/** StartTraining with defaults filled in; throws INVALID_ARGUMENT (or UNIMPLEMENTED) naming the field. */
export function normaliseTrainingRequest(request: StartTrainingRequest): TrainingRequest {
  checkRequestId(request.requestId, false);
  if (request.mode === TrainingMode.TRAINING_MODE_UNSPECIFIED) {
    throw invalidArgument('mode is required: TRAINING_MODE_JOINT or TRAINING_MODE_SISA');
  }
  const sisaMode = request.mode === TrainingMode.TRAINING_MODE_SISA;
  if (!sisaMode && request.mode !== TrainingMode.TRAINING_MODE_JOINT) {
    throw invalidArgument(`mode: unknown value ${request.mode}`);
  }
  if (request.sisa && !sisaMode) {
    throw invalidArgument('sisa options are only valid with TRAINING_MODE_SISA');
  }
  const dataset = datasetUri(request.dataset, 'dataset');
  if (request.dataset?.split === 2) throw invalidArgument('dataset.split must be the train split');
  const preset = request.preset || 'small';
  if (!Object.keys(PRESETS).includes(preset)) {
    throw invalidArgument(
      `preset: unknown ${JSON.stringify(preset)} (known: ${Object.keys(PRESETS).join(', ')})`,
    );
  }
  const experts = request.experts || 4;
  if (experts < 1 || experts > 64) throw invalidArgument(`experts must be 1..64, got ${experts}`);
  const topK = request.topK || 2;
  if (topK > experts) throw invalidArgument(`top_k (${topK}) must not exceed experts (${experts})`);
  const batchSize = request.batchSize || 128;
  if (batchSize > 4096) throw invalidArgument(`batch_size must be 1..4096, got ${batchSize}`);
  const learningRate = request.learningRate || 0.003;
  if (!Number.isFinite(learningRate) || learningRate < 0) {
    throw invalidArgument(`learning_rate must be a finite number > 0, got ${learningRate}`);
  }
  const nonNegative = (name: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (!Number.isFinite(v) || v < 0) throw invalidArgument(`${name} must be >= 0, got ${v}`);
    return v;
  };
  let sisa: TrainingRequest['sisa'];
  if (sisaMode) {
    const o = request.sisa;
    if (o && o.shards !== 0 && o.shards !== experts) {
      throw invalidArgument(`sisa.shards must be 0 or experts (${experts}), got ${o.shards}`);
    }
    const slices = o?.slices || 4;
    if (slices > 64) throw invalidArgument(`sisa.slices must be 1..64, got ${slices}`);
    sisa = { slices, routerEpochs: o?.routerEpochs || 2 };
  }
  return {
    mode: sisaMode ? 'sisa' : 'joint',
    ...(sisa ? { sisa } : {}),
    dataset,
    limit: request.dataset?.limit ?? 0,
    preset,
    experts,
    topK,
    epochs: request.epochs || 10,
    batchSize,
    learningRate,
    weightDecay: nonNegative('weight_decay', request.weightDecay, 0.0005),
    schedule: SCHEDULES[request.schedule],
    seed: request.seed,
    balanceWeight: nonNegative('balance_weight', request.balanceWeight, 0.1),
    routerNoise: nonNegative('router_noise', request.routerNoise, 1),
    augment: request.augment ?? true,
  };
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

const LOSS_NAMES: Partial<Record<UnlearningLoss, UnlearningLossName>> = {
  [UnlearningLoss.UNLEARNING_LOSS_COMPLEMENT_CE]: 'complement-ce',
  [UnlearningLoss.UNLEARNING_LOSS_RANDOM_LABEL]: 'random-label',
  [UnlearningLoss.UNLEARNING_LOSS_DISTILL]: 'distill',
};

/** The parts of a forget request that do not depend on the model; throws INVALID_ARGUMENT. */
export interface ForgetOptions {
  method: MethodName | 'sisa-replay';
  /** Samples target (sisa replay): the ids, sorted and without duplicates. */
  sampleIds?: string[];
  loss?: UnlearningLossName;
  select?: string;
  retainFraction?: number;
  epochs: number;
  learningRate: number;
  lambda: number;
  maskOutput: boolean;
  batchSize: number;
  seed: number;
}

export function normaliseForgetOptions(request: SubmitForgetRequest): ForgetOptions {
  checkRequestId(request.requestId, true);
  const target = request.target;
  if (!target) throw invalidArgument('a target is required: class_name, class_index or sample_ids');
  if (target.$case === 'sampleIds') {
    const ids = target.value.ids;
    if (ids.length === 0) throw invalidArgument('sample_ids is empty');
    if (ids.length > 50_000)
      throw invalidArgument(`sample_ids holds ${ids.length} ids; at most 50,000`);
    const bad = ids.find((id) => !SAMPLE_ID.test(id));
    if (bad !== undefined) throw invalidArgument(`malformed sample id ${JSON.stringify(bad)}`);
    if (request.maskOutput) throw invalidArgument('mask_output applies to a class target only');
  }
  if (target.$case === 'className' && target.value === '') {
    throw invalidArgument('class_name is empty');
  }
  if (request.method === ForgetMethod.FORGET_METHOD_SISA_REPLAY) {
    if (target.$case !== 'sampleIds') {
      throw invalidArgument('FORGET_METHOD_SISA_REPLAY forgets samples: give sample_ids');
    }
  }
  if (target.$case === 'sampleIds') {
    const other =
      request.method !== ForgetMethod.FORGET_METHOD_UNSPECIFIED &&
      request.method !== ForgetMethod.FORGET_METHOD_SISA_REPLAY;
    if (other) throw invalidArgument('sample_ids are forgotten by sisa replay only');
    return {
      method: 'sisa-replay',
      sampleIds: [...new Set(target.value.ids)].sort(),
      epochs: 0,
      learningRate: 0,
      lambda: 0,
      maskOutput: false,
      batchSize: 0,
      seed: 0,
    };
  }
  const method = METHODS[request.method];
  if (!method) throw invalidArgument(`method: unknown value ${request.method}`);
  if (
    method !== 'targeted' &&
    (request.loss !== UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED ||
      request.select ||
      request.retainFraction)
  ) {
    throw invalidArgument(
      `loss, select and retain_fraction apply to the targeted method only, not ${method}`,
    );
  }
  if (request.loss !== UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED && !LOSS_NAMES[request.loss]) {
    throw invalidArgument(`loss: unknown value ${request.loss}`);
  }
  const retainFraction = request.retainFraction;
  if (retainFraction && !(retainFraction > 0 && retainFraction <= 1)) {
    throw invalidArgument(`retain_fraction must be in (0, 1], got ${retainFraction}`);
  }
  const epochs = request.epochs || 5;
  if (epochs > 100) throw invalidArgument(`epochs must be 1..100, got ${epochs}`);
  const learningRate = request.learningRate || 1e-4;
  if (!Number.isFinite(learningRate) || learningRate <= 0) {
    throw invalidArgument(`learning_rate must be > 0, got ${learningRate}`);
  }
  const lambda = request.lambda || 1;
  if (!Number.isFinite(lambda) || lambda <= 0)
    throw invalidArgument(`lambda must be > 0, got ${lambda}`);
  if (request.select) {
    try {
      parseSelectionRule(request.select);
    } catch (error) {
      throw invalidArgument(`select: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const batchSize = request.batchSize || 128;
  if (batchSize > 4096) throw invalidArgument(`batch_size must be 1..4096, got ${batchSize}`);
  return {
    method,
    ...(LOSS_NAMES[request.loss] ? { loss: LOSS_NAMES[request.loss] } : {}),
    ...(request.retainFraction ? { retainFraction: request.retainFraction } : {}),
    ...(request.select ? { select: request.select } : {}),
    epochs,
    learningRate,
    lambda,
    maskOutput: request.maskOutput,
    batchSize,
    seed: request.seed,
  };
}
