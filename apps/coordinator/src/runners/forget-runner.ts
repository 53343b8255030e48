import { type ChannelStats, type Dataset, limitTrainingSet } from '@lethe/data';
import { MoEModel, type StepProgress } from '@lethe/model';
import { Split } from '@lethe/proto';
import type { ObjectStore } from '@lethe/store';
import { loadSisa, replayBatch, type SisaBatchOutcome } from '@lethe/sisa';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from '@lethe/rpc';
import {
  type ClassForgetRequest,
  DEFAULT_SAMPLE_FORGET_RECIPE,
  forgetClass,
  forgetJointSamples,
  type ForgetPreview,
  ForgetRequestError,
  previewClassForget,
  previewSampleForget,
  type RemoteExperts,
  type SampleForgetPreview,
  type SampleForgetRequest,
  type StoredReceipt,
} from '@lethe/unlearning';
import type { Logger } from 'pino';
import {
  type JobContext,
  STEP_IDS_PER_JOB,
  type StepTiming,
  stepProgress,
} from '../contract/job-context';
import { modelSpecOf } from '../model/model-spec';
import type { CurrentModel, ModelState } from '../model/current-model';
import { ExpertParallelExecutor } from './expert-parallel-executor';
import { sisaProgressReporter, sisaShardTrainer } from './sisa-support';
import type { ExpertDirectory } from '../workers/expert-directory';
import { type ExpertCheckpoint, ExpertSession } from '../workers/expert-session';
import type { ForgetJobRequest } from '../contract/forget-request';

export interface ForgetRunnerDeps {
  store: ObjectStore;
  models: ModelState;
  directory: ExpertDirectory;
  log: Logger;
  workerDeadlineMs: number;
  /** Metrics: each expert-parallel retraining step and each call to a worker. */
  metrics?: {
    recordStep(timing: StepTiming): void;
    recordWorkerRpc(method: string, seconds: number): void;
  };
}

/**
 * Runs a forget request with libs/unlearning's class-forget job — the same plan, metrics,
 * receipt and one-revision publish as `lethe forget` — with the targeted method's chosen experts
 * retrained on the workers that host them and the router here. Frozen experts never leave their
 * stored weights: their logits are computed here once per sample and cached. Baseline methods
 * run in this process. Re-running a request that already published returns its receipt, so a
 * request interrupted by a restart completes exactly once.
 */
export async function runForgetJob(
  deps: ForgetRunnerDeps,
  request: ForgetJobRequest,
  job: JobContext,
): Promise<StoredReceipt> {
  const current = await deps.models.current();
  if (!current) throw new Error('no trained model in the store');
  if (request.method === 'sisa-replay') {
    // A batch of one: the same replay path the job queue uses for several requests.
    const [outcome] = await runSisaForgetBatch(deps, [request], job);
    if ('error' in outcome!) throw outcome.error;
    return outcome!.receipt;
  }
  const { train, test } = await forgetData(deps.models, current);
  const progress = {
    signal: job.signal,
    onStatus: (message: string) => job.log('info', message),
    onWarning: (message: string) => job.log('warn', message),
    onStep: (p: StepProgress) =>
      job.progress(
        stepProgress('forget', p, Math.round(p.totalSteps / Math.max(1, p.stepsPerEpoch))),
      ),
  };
  if (request.method === 'samples') {
    const method = request.sampleMethod ?? DEFAULT_SAMPLE_FORGET_RECIPE.method;
    // l1-sparse's penalty needs the experts' weights in this process's gradient tape, so its
    // experts retrain here, in the jobs thread, as the class baselines do.
    const remote = method === 'l1-sparse' ? undefined : await remoteExpertsFor(deps, current, job);
    if (!remote) job.log('info', `${method} retrains its experts in the coordinator`);
    return forgetJointSamples(
      { store: deps.store, train, test, ...progress, ...(remote ? { remoteExperts: remote } : {}) },
      sampleForgetRequest(request),
    );
  }
  return forgetClass(
    {
      store: deps.store,
      train,
      test,
      remoteExperts: await remoteExpertsFor(deps, current, job),
      ...progress,
    },
    classForgetRequest(request),
  );
}

/**
 * Where a forget's retrained experts step: on the workers that host them, loaded from the stored
 * weights with a fresh optimizer, checkpointed there and read back; the router steps here.
 */
async function remoteExpertsFor(
  deps: ForgetRunnerDeps,
  current: CurrentModel,
  job: JobContext,
): Promise<RemoteExperts> {
  const { card, manifest, training } = current;
  const experts = card.config.experts;
  await deps.directory.setExpertCount(experts);
  const checkpoints = new Map<number, ExpertCheckpoint>();
  for (let e = 0; e < experts; e++) {
    const weights = manifest.objects[`expert/${e}`];
    if (weights) checkpoints.set(e, { weights, lastStepId: 0 });
  }
  const session = new ExpertSession(deps.directory, deps.log, {
    model: modelSpecOf(card.config, card.normalisation),
    datasets: {
      train: {
        source: { $case: 'uri', value: training.dataset },
        split: Split.SPLIT_TRAIN,
        limit: 0,
      },
    },
    checkpoints,
    // Forgetting starts from the stored weights with a fresh optimizer, as `lethe forget` does.
    freshOptimizer: true,
    deadlineMs: deps.workerDeadlineMs,
    onRecovery: (message) => job.log('warn', message),
    ...(deps.metrics ? { onRpc: deps.metrics.recordWorkerRpc.bind(deps.metrics) } : {}),
  });
  const parallel = new ExpertParallelExecutor(session, deps.store, {
    datasetKey: 'train',
    stepBase: job.seq * STEP_IDS_PER_JOB,
    remote: new Set<number>(),
    ...(deps.metrics ? { onTiming: deps.metrics.recordStep.bind(deps.metrics) } : {}),
  });
  return {
    step: parallel.step.bind(parallel),
    prepare: async (model: MoEModel, selected: readonly number[]) => {
      parallel.setRemote(selected);
      job.retraining?.(selected);
      job.log('info', `retraining experts ${selected.join(', ')} on their workers`);
      await parallel.prepare(model, selected);
    },
    collect: (model: MoEModel, selected: readonly number[]) => parallel.collect(model, selected),
  };
}

/** A stored joint samples request as libs/unlearning's: only what the client set. */
function sampleForgetRequest(request: ForgetJobRequest): SampleForgetRequest {
  return {
    requestId: request.requestId,
    sampleIds: request.sampleIds ?? [],
    ...(request.subjects ? { subjects: request.subjects } : {}),
    ...(request.sampleMethod ? { method: request.sampleMethod } : {}),
    ...(request.epochs !== undefined ? { epochs: request.epochs } : {}),
    ...(request.learningRate !== undefined ? { learningRate: request.learningRate } : {}),
    ...(request.lambda !== undefined ? { lambda: request.lambda } : {}),
    ...(request.anchor !== undefined ? { anchor: request.anchor } : {}),
    ...(request.retainFraction !== undefined ? { retainFraction: request.retainFraction } : {}),
    ...(request.measure !== undefined ? { measure: request.measure } : {}),
    ...(request.batchSize !== undefined ? { batchSize: request.batchSize } : {}),
    seed: request.seed,
  };
}

/** A stored forget request as libs/unlearning's: only what the client set, defaults there. */
function classForgetRequest(request: ForgetJobRequest): ClassForgetRequest {
  if (request.method === 'sisa-replay' || request.method === 'samples') {
    throw new Error(`${request.method} needs sample ids`);
  }
  return {
    requestId: request.requestId,
    class: String(request.classIndex),
    method: request.method,
    loss: request.loss,
    select: request.select,
    retainFraction: request.retainFraction,
    anchor: request.anchor,
    measure: request.measure,
    epochs: request.epochs,
    learningRate: request.learningRate,
    lambda: request.lambda,
    maskOutput: request.maskOutput,
    batchSize: request.batchSize,
    seed: request.seed,
  };
}

/** The current model's training set (as it was limited for training) and test split. */
async function forgetData(
  models: ModelState,
  current: CurrentModel,
): Promise<{ train: Dataset; test: Dataset }> {
  const { training } = current;
  const train = limitTrainingSet(
    await models.dataset(training.dataset, 'train'),
    training.limit ?? undefined,
    training.seed ?? 0,
  );
  return { train, test: await models.dataset(training.dataset, 'test') };
}

const REQUEST_STATUS = {
  'invalid-argument': invalidArgument,
  'not-found': notFound,
  'failed-precondition': failedPrecondition,
  'already-exists': alreadyExists,
} as const;

/**
 * A dry run of a class forget on the current joint model: libs/unlearning's plan and cost
 * estimate (one router pass over the training set, here in the jobs engine thread), nothing
 * written. A request the library refuses is refused with the matching status code.
 */
export async function previewForget(
  models: ModelState,
  store: ObjectStore,
  request: ForgetJobRequest,
  signal: AbortSignal,
): Promise<ForgetPreview | SampleForgetPreview> {
  const current = await models.current();
  if (!current) throw failedPrecondition('no trained model: run StartTraining first');
  const { train, test } = await forgetData(models, current).catch((error: unknown) => {
    // The request is fine; the model's own training data is what is missing.
    const why = error instanceof Error ? error.message : String(error);
    throw failedPrecondition(
      `the model's training data (${current.training.dataset.slice(0, 200)}) cannot be read: ${why.slice(0, 300)}`,
    );
  });
  try {
    if (request.method === 'samples') {
      return await previewSampleForget(
        { store, train, test, signal },
        sampleForgetRequest(request),
      );
    }
    return await previewClassForget({ store, train, test, signal }, classForgetRequest(request));
  } catch (error) {
    if (error instanceof ForgetRequestError) throw REQUEST_STATUS[error.code](error.message);
    throw error;
  }
}

/**
 * Several sisa forget requests with one replay (requests queued while another ran): one
 * retraining of the affected shards on their workers, one manifest revision, a receipt each.
 * Returns each request's receipt or error, in order.
 */
export async function runSisaForgetBatch(
  deps: ForgetRunnerDeps,
  requests: readonly ForgetJobRequest[],
  job: JobContext,
): Promise<SisaBatchOutcome[]> {
  const current = await deps.models.current();
  if (!current) throw new Error('no trained model in the store');
  const { training, card } = current;
  const train = limitTrainingSet(
    await deps.models.dataset(training.dataset, 'train'),
    training.limit ?? undefined,
    card.config.seed,
  );
  job.log('info', `forgetting the samples of ${requests.length} requests with one replay`);
  const { sisa } = await loadSisa(deps.store);
  const trainer = await sisaShardTrainer(deps, job, training.dataset, train, {
    config: card.config,
    normalise: card.normalisation as ChannelStats,
    epochsPerSlice: sisa.epochsPerSlice,
    routerEpochs: sisa.routerEpochs,
    routerFraction: sisa.routerFraction,
    batchSize: sisa.batchSize,
    learningRate: sisa.learningRate,
    weightDecay: sisa.weightDecay,
  });
  const { outcomes } = await replayBatch(
    deps.store,
    train,
    requests.map((r) => ({
      requestId: r.requestId,
      sampleIds: r.sampleIds!,
      ...(r.subjects ? { subjects: r.subjects } : {}),
    })),
    sisaProgressReporter(job),
    trainer,
  );
  return outcomes;
}
