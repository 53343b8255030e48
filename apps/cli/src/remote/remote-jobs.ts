import { readFile } from 'node:fs/promises';
import {
  type CoordinatorClient,
  DatasetSpec,
  EvaluateRequest,
  ForgetMethod,
  type ForgetEstimate as ProtoEstimate,
  type ForgetPreview as ProtoPreview,
  Job,
  JobState,
  LearningRateSchedule,
  ListReceiptsResponse,
  MeasureMode,
  Receipt,
  EvaluateResponse,
  type SisaForgetPlan as ProtoSisaPlan,
  Split,
  StartTrainingRequest,
  SubmitForgetRequest,
  TrainingMode,
  UnlearningLoss,
} from '@lethe/proto';
import {
  DEFAULT_SAMPLE_FORGET_RECIPE,
  type ForgetMethod as ClassForgetMethod,
  FORGET_METHODS,
  type ForgetEstimate,
  type ForgetPreview,
  type MeasureMode as MeasureModeName,
  SAMPLE_FORGET_METHODS,
  type SampleForgetMethod,
  type SampleForgetPreview,
  type UnlearningLoss as UnlearningLossName,
} from '@lethe/unlearning';
import type { SisaForgetPlan } from '@lethe/sisa';
import { CliError } from '../terminal/errors';
import { percent } from '../terminal/tables';
import {
  callUnary,
  EVALUATE_DEADLINE_MS,
  jobStateName,
  printMessage,
  watchJob,
  withCoordinator,
} from './grpc';
import { printRemoteEvaluation, printRemoteReceipt, receiptsTable } from './format';
import { jobProgress } from './job-progress';
import { logJob } from './job-log';
import type { CoordinatorTarget } from './target';

// ---------------------------------------------------------------------------------------------
// Requests from CLI flags

export interface RemoteTrainFlags {
  data: string;
  preset: string;
  experts: number;
  /** Unset: the coordinator's default (2; sisa: every expert). */
  topK?: number;
  /** Unset: the coordinator's default (10; sisa: 4 per slice prefix). */
  epochs?: number;
  batch: number;
  lr: number;
  weightDecay: number;
  schedule: 'constant' | 'cosine' | 'one-cycle';
  seed: number;
  augment: boolean;
  balance: number;
  routerNoise: number;
  /** β of the specialization loss; unset: the coordinator's default. */
  specialize?: number;
  limit?: number;
  requestId?: string;
  json: boolean;
  /** Sisa: one expert per shard, `slices` slices, router trained after with experts frozen. */
  mode?: 'joint' | 'sisa';
  slices?: number;
  routerEpochs?: number;
  /** A subject table's path, read on the coordinator's machine (as `data`). */
  subjects?: string;
}

const SCHEDULES: Record<RemoteTrainFlags['schedule'], LearningRateSchedule> = {
  constant: LearningRateSchedule.LEARNING_RATE_SCHEDULE_CONSTANT,
  cosine: LearningRateSchedule.LEARNING_RATE_SCHEDULE_COSINE,
  'one-cycle': LearningRateSchedule.LEARNING_RATE_SCHEDULE_ONE_CYCLE,
};

export function datasetSpec(uri: string, split = Split.SPLIT_UNSPECIFIED, limit = 0): DatasetSpec {
  return DatasetSpec.fromPartial({ source: { $case: 'uri', value: uri }, split, limit });
}

/** `lethe train` flags as a StartTrainingRequest. */
export function trainingRequest(flags: RemoteTrainFlags): StartTrainingRequest {
  const sisa = flags.mode === 'sisa';
  return StartTrainingRequest.fromPartial({
    requestId: flags.requestId ?? '',
    mode: sisa ? TrainingMode.TRAINING_MODE_SISA : TrainingMode.TRAINING_MODE_JOINT,
    ...(sisa
      ? { sisa: { shards: 0, slices: flags.slices ?? 0, routerEpochs: flags.routerEpochs ?? 0 } }
      : {}),
    dataset: datasetSpec(flags.data, Split.SPLIT_TRAIN, flags.limit ?? 0),
    preset: flags.preset,
    experts: flags.experts,
    topK: flags.topK ?? 0,
    epochs: flags.epochs ?? 0,
    batchSize: flags.batch,
    learningRate: flags.lr,
    weightDecay: flags.weightDecay,
    schedule: SCHEDULES[flags.schedule],
    seed: flags.seed,
    balanceWeight: flags.balance,
    routerNoise: flags.routerNoise,
    specializeWeight: flags.specialize,
    augment: flags.augment,
    subjects: flags.subjects ?? '',
  });
}

export const REMOTE_FORGET_METHODS = [
  'targeted',
  'retrain',
  'finetune',
  'gradient-ascent',
  'random-label',
  'mask',
  'sisa-replay',
  // Samples and subjects of a joint model (finetune and retrain too).
  'neggrad+',
  'scrub',
  'l1-sparse',
] as const;
export type RemoteForgetMethod = (typeof REMOTE_FORGET_METHODS)[number];

const METHODS: Record<RemoteForgetMethod, ForgetMethod> = {
  targeted: ForgetMethod.FORGET_METHOD_TARGETED,
  retrain: ForgetMethod.FORGET_METHOD_RETRAIN,
  finetune: ForgetMethod.FORGET_METHOD_FINETUNE,
  'gradient-ascent': ForgetMethod.FORGET_METHOD_GRADIENT_ASCENT,
  'random-label': ForgetMethod.FORGET_METHOD_RANDOM_LABEL,
  mask: ForgetMethod.FORGET_METHOD_MASK,
  'sisa-replay': ForgetMethod.FORGET_METHOD_SISA_REPLAY,
  'neggrad+': ForgetMethod.FORGET_METHOD_NEGGRAD_PLUS,
  scrub: ForgetMethod.FORGET_METHOD_SCRUB,
  'l1-sparse': ForgetMethod.FORGET_METHOD_L1_SPARSE,
};

/** A method's name as the CLI and libs/unlearning spell it (`neggrad+`), from the API's enum. */
export function remoteMethodName(method: ForgetMethod): RemoteForgetMethod | undefined {
  return (Object.keys(METHODS) as RemoteForgetMethod[]).find((name) => METHODS[name] === method);
}

const LOSSES: Record<UnlearningLossName, UnlearningLoss> = {
  'complement-ce': UnlearningLoss.UNLEARNING_LOSS_COMPLEMENT_CE,
  'random-label': UnlearningLoss.UNLEARNING_LOSS_RANDOM_LABEL,
  distill: UnlearningLoss.UNLEARNING_LOSS_DISTILL,
};

const MEASURES: Record<MeasureModeName, MeasureMode> = {
  sample: MeasureMode.MEASURE_MODE_SAMPLE,
  full: MeasureMode.MEASURE_MODE_FULL,
};

export interface RemoteForgetFlags {
  class?: string;
  samples?: string[];
  /** Data subjects: their training samples, expanded by the coordinator. */
  subjects?: string[];
  method?: RemoteForgetMethod;
  loss?: UnlearningLossName;
  retainFraction?: number;
  anchor?: number;
  measure?: MeasureModeName;
  /** Plan and cost only (SubmitForget dry_run): no job, nothing changed. */
  dryRun?: boolean;
  /** Unset: the coordinator's default recipe. */
  epochs?: number;
  lr?: number;
  lambda?: number;
  select?: string;
  maskOutput: boolean;
  batch: number;
  seed: number;
  requestId: string;
  json: boolean;
}

/** `lethe forget` flags as a SubmitForgetRequest: a class by name or index, or sample ids. */
export function forgetRequest(flags: RemoteForgetFlags): SubmitForgetRequest {
  let target: SubmitForgetRequest['target'];
  if (flags.subjects) target = { $case: 'subjectIds', value: { ids: flags.subjects } };
  else if (flags.samples) target = { $case: 'sampleIds', value: { ids: flags.samples } };
  else if (flags.class !== undefined && /^\d+$/.test(flags.class))
    target = { $case: 'classIndex', value: Number(flags.class) };
  else if (flags.class !== undefined) target = { $case: 'className', value: flags.class };
  return SubmitForgetRequest.fromPartial({
    requestId: flags.requestId,
    target,
    method: flags.method ? METHODS[flags.method] : ForgetMethod.FORGET_METHOD_UNSPECIFIED,
    loss: flags.loss ? LOSSES[flags.loss] : UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED,
    retainFraction: flags.retainFraction ?? 0,
    anchor: flags.anchor,
    measure: flags.measure ? MEASURES[flags.measure] : MeasureMode.MEASURE_MODE_UNSPECIFIED,
    dryRun: flags.dryRun ?? false,
    // 0 is the proto's "unset": the coordinator applies the default recipe.
    epochs: flags.epochs ?? 0,
    learningRate: flags.lr ?? 0,
    lambda: flags.lambda ?? 0,
    select: flags.select ?? '',
    maskOutput: flags.maskOutput,
    batchSize: flags.batch,
    seed: flags.seed,
  });
}

/** Sample ids from `--samples a,b` and/or a file of ids separated by commas or white space. */
export async function readSampleIds(list?: string, file?: string): Promise<string[] | undefined> {
  if (list === undefined && file === undefined) return undefined;
  const split = (text: string): string[] => text.split(/[\s,]+/).filter((id) => id.length > 0);
  const ids = list === undefined ? [] : split(list);
  if (file !== undefined) {
    const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new CliError(`cannot read --samples-file ${file}: ${error.code ?? error.message}`);
    });
    ids.push(...split(text));
  }
  if (ids.length === 0) throw new CliError('no sample ids given (--samples / --samples-file)');
  return ids;
}

/** A fresh forget request id matching the contract's `^[a-z0-9][a-z0-9._-]{0,63}$`. */
export function newRequestId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '')
    .toLowerCase();
  return `forget-${stamp}-${Math.random().toString(36).slice(2, 8)}`;
}

// ---------------------------------------------------------------------------------------------
// Running them

/** Watches a job with a progress display; fails with one line unless it SUCCEEDED. */
async function followJob(client: CoordinatorClient, job: Job): Promise<Job> {
  const progress = jobProgress();
  let final: Job;
  try {
    final = await watchJob(client, job.jobId, progress.onEvent);
  } finally {
    progress.stop();
  }
  if (final.state !== JobState.JOB_STATE_SUCCEEDED) {
    throw new CliError(
      `job ${final.jobId} ${jobStateName(final.state)}${final.error ? `: ${final.error}` : ''}`,
    );
  }
  return final;
}

/** `lethe train --coordinator`: StartTraining, then WatchJob until the job finishes. */
export async function remoteTrain(
  target: CoordinatorTarget,
  flags: RemoteTrainFlags,
): Promise<void> {
  await withCoordinator(target, async (client) => {
    const job = await callUnary(client, client.startTraining, trainingRequest(flags));
    logJob(job.jobId, target.address);
    process.stderr.write(
      `training job ${job.jobId} on ${target.address}: ${jobStateName(job.state)}\n`,
    );
    const final = await followJob(client, job);
    if (flags.json) {
      printMessage(Job, final);
      return;
    }
    const p = final.progress;
    console.log(
      `trained: job ${final.jobId} succeeded, manifest revision ${final.manifestRevision}` +
        (p
          ? `; epoch ${p.epoch}/${p.epochs}, train loss ${p.loss.toFixed(3)}, train accuracy ${percent(p.accuracy)}, ${Math.round(p.imagesPerSecond)} img/s`
          : ''),
    );
    console.log(`evaluate it with: npx lethe eval --coordinator ${target.address}`);
  });
}

/**
 * `lethe forget --dry-run --coordinator`: SubmitForget with dry_run; the plan and estimate in
 * the shape a local dry run gives, so both print alike.
 */
export async function remoteForgetPreview(
  target: CoordinatorTarget,
  flags: RemoteForgetFlags,
): Promise<ForgetPreview | SampleForgetPreview | SisaForgetPlan> {
  return withCoordinator(target, async (client) => {
    const response = await callUnary(
      client,
      client.submitForget,
      forgetRequest({ ...flags, dryRun: true }),
    );
    if (response.duplicate) {
      throw new CliError(
        `request id ${flags.requestId} is already job ${response.job?.jobId ?? '?'}: nothing to plan`,
      );
    }
    if (response.sisaPlan) return sisaPlanFromProto(response.sisaPlan);
    if (!response.preview)
      throw new CliError('the coordinator answered the dry run without a plan');
    return previewFromProto(response.preview);
  });
}

/** The API's SisaForgetPlan as libs/sisa's, for printing and --json. */
function sisaPlanFromProto(plan: ProtoSisaPlan): SisaForgetPlan {
  const e = plan.estimate;
  return {
    manifestRevision: plan.manifestRevision,
    samples: plan.samples,
    shards: plan.shards,
    slices: plan.slices,
    replay: plan.replay.map((r) => ({
      shard: r.shard,
      samplesRemoved: r.samplesRemoved,
      slicesReplayed: r.slicesReplayed,
      sampleEpochs: r.sampleEpochs,
    })),
    work: {
      sampleEpochs: plan.sampleEpochs,
      fullTrainingSampleEpochs: plan.fullTrainingSampleEpochs,
    },
    routerEpochs: plan.routerEpochs,
    estimate: e
      ? {
          replaySeconds: e.replaySeconds,
          routerSeconds: e.routerSeconds,
          totalSeconds: e.totalSeconds,
          rate: {
            sampleEpochsPerSecond: e.sampleEpochsPerSecond,
            routerSeconds: e.routerSeconds,
            source: e.rateSource === 'replay' ? 'replay' : 'training',
            measuredAt: (e.rateMeasuredAt ?? new Date(0)).toISOString(),
          },
        }
      : null,
  };
}

/** The API's ForgetPreview of a joint model's samples as libs/unlearning's. */
function samplePreviewFromProto(preview: ProtoPreview): SampleForgetPreview {
  const r = preview.request!;
  const plan = preview.plan!;
  const method = remoteMethodName(r.method);
  const measure = (Object.keys(MEASURES) as MeasureModeName[]).find(
    (n) => MEASURES[n] === r.measure,
  );
  return {
    request: {
      kind: 'samples',
      sampleIds: r.target?.$case === 'sampleIds' ? r.target.value.ids : [],
      subjects: r.subjects,
      method: (SAMPLE_FORGET_METHODS as readonly string[]).includes(method ?? '')
        ? (method as SampleForgetMethod)
        : DEFAULT_SAMPLE_FORGET_RECIPE.method,
      epochs: r.epochs,
      learningRate: r.learningRate,
      lambda: r.lambda,
      retainFraction: r.retainFraction,
      batchSize: r.batchSize,
      seed: r.seed,
      measure: measure ?? DEFAULT_SAMPLE_FORGET_RECIPE.measure,
    },
    plan: {
      samples: plan.samples,
      experts: plan.experts,
      seenBy: plan.seenBy,
      lineageEpochs: plan.lineageEpochs,
      retainedRouted: plan.retainedRouted,
      collateral: plan.collateral,
    },
    estimate: estimateFromProto(preview.estimate!),
    manifestRevision: preview.manifestRevision,
  };
}

/** The proto's ForgetEstimate mirrors libs/unlearning's field for field, the rate's source a string. */
function estimateFromProto(estimate: ProtoEstimate): ForgetEstimate {
  const { rate, ...rest } = estimate;
  return {
    trainingRate: undefined,
    seconds: undefined,
    ...rest,
    rate: rate
      ? {
          ...rate,
          source: rate.source === 'forget' ? 'forget' : 'training',
          measuredAt: rate.measuredAt,
        }
      : undefined,
  };
}

/** The API's ForgetPreview as libs/unlearning's, for printing and --json. */
function previewFromProto(preview: ProtoPreview): ForgetPreview | SampleForgetPreview {
  const r = preview.request!;
  if (r.target?.$case === 'sampleIds') return samplePreviewFromProto(preview);
  const plan = preview.plan!;
  const method = remoteMethodName(r.method);
  const loss = (Object.keys(LOSSES) as UnlearningLossName[]).find((n) => LOSSES[n] === r.loss);
  const measure = (Object.keys(MEASURES) as MeasureModeName[]).find(
    (n) => MEASURES[n] === r.measure,
  );
  const target = r.target?.$case === 'classTarget' ? r.target.value : { index: 0, name: '' };
  return {
    request: {
      kind: 'class',
      classIndex: target.index,
      className: target.name,
      method: (FORGET_METHODS as readonly string[]).includes(method ?? '')
        ? (method as ClassForgetMethod)
        : 'targeted',
      loss: loss ?? 'distill',
      epochs: r.epochs,
      learningRate: r.learningRate,
      lambda: r.lambda,
      retainFraction: r.retainFraction,
      ...(r.anchor !== undefined ? { anchor: r.anchor } : {}),
      select: r.select,
      maskOutput: r.maskOutput,
      batchSize: r.batchSize,
      seed: r.seed,
      ...(measure ? { measure } : {}),
    },
    plan: {
      classIndex: plan.classIndex ?? target.index,
      className: plan.className,
      samples: plan.samples,
      activations: plan.activations,
      rule: plan.rule,
      experts: plan.experts,
      coverage: plan.coverage,
      expertCollateral: plan.expertCollateral,
      collateral: plan.collateral,
      retainedRouted: plan.retainedRouted,
    },
    estimate: estimateFromProto(preview.estimate!),
    manifestRevision: preview.manifestRevision,
  };
}

/** `lethe forget --coordinator`: SubmitForget, WatchJob, then GetReceipt. */
export async function remoteForget(
  target: CoordinatorTarget,
  flags: RemoteForgetFlags,
): Promise<void> {
  await withCoordinator(target, async (client) => {
    const response = await callUnary(client, client.submitForget, forgetRequest(flags));
    const job = response.job;
    if (!job) throw new CliError('the coordinator answered SubmitForget without a job');
    logJob(job.jobId, target.address);
    process.stderr.write(
      `forget request ${flags.requestId}: job ${job.jobId} on ${target.address}, ${jobStateName(job.state)}` +
        (response.duplicate ? ' (submitted before: following the original job)' : '') +
        (job.forgetWindowClosesAt
          ? `, waiting for the forget window, whose batch closes at ${job.forgetWindowClosesAt.toISOString()}`
          : '') +
        '\n',
    );
    await followJob(client, job);
    const receipt = await callUnary(client, client.getReceipt, {
      requestId: response.receiptId || flags.requestId,
    });
    if (flags.json) printMessage(Receipt, receipt);
    else printRemoteReceipt(receipt);
  });
}

export interface RemoteEvalFlags {
  data?: string;
  split?: 'train' | 'test';
  batch: number;
  ignoreOutputMask: boolean;
  json: boolean;
}

/** `lethe eval --coordinator`: Evaluate (synchronous, long deadline). */
export async function remoteEval(target: CoordinatorTarget, flags: RemoteEvalFlags): Promise<void> {
  const split =
    flags.split === 'train'
      ? Split.SPLIT_TRAIN
      : flags.split === 'test'
        ? Split.SPLIT_TEST
        : Split.SPLIT_UNSPECIFIED;
  if (!flags.data && split === Split.SPLIT_TRAIN) {
    throw new CliError(
      '--split train needs --data with --coordinator (the default is the test split)',
    );
  }
  const request = EvaluateRequest.fromPartial({
    ...(flags.data ? { dataset: datasetSpec(flags.data, split) } : {}),
    batchSize: flags.batch,
    ignoreOutputMask: flags.ignoreOutputMask,
  });
  await withCoordinator(target, async (client) => {
    const result = await callUnary(client, client.evaluate, request, {
      deadlineMs: EVALUATE_DEADLINE_MS,
    });
    if (flags.json) printMessage(EvaluateResponse, result);
    else printRemoteEvaluation(result);
  });
}

/** `lethe receipts --coordinator`: every page of ListReceipts, or GetReceipt with --id. */
export async function remoteReceipts(
  target: CoordinatorTarget,
  flags: { requestId?: string; json: boolean },
): Promise<void> {
  await withCoordinator(target, async (client) => {
    if (flags.requestId) {
      const receipt = await callUnary(client, client.getReceipt, { requestId: flags.requestId });
      if (flags.json) printMessage(Receipt, receipt);
      else printRemoteReceipt(receipt);
      return;
    }
    const receipts: Receipt[] = [];
    let pageToken = '';
    let totalSize = 0;
    do {
      const page = await callUnary(client, client.listReceipts, { pageSize: 500, pageToken });
      receipts.push(...page.receipts);
      totalSize = page.totalSize;
      pageToken = page.nextPageToken;
    } while (pageToken);
    if (flags.json) {
      printMessage(ListReceiptsResponse, { receipts, nextPageToken: '', totalSize });
    } else if (receipts.length === 0) {
      console.log('no receipts');
    } else {
      console.log(receiptsTable(receipts));
    }
  });
}
