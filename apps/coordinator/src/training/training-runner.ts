import { BatchSampler, defaultNormalisation, limitTrainingSet } from '@lethe/data';
import { engineInfo } from '@lethe/engine';
import {
  type EpochSummary,
  MoEModel,
  publishModel,
  type StepContext,
  type StepExecutor,
  type StepResult,
  storeParts,
  trainModel,
} from '@lethe/model';
import {
  buildRoster,
  describeHonoured,
  honourLedger,
  revisionHonouring,
  ROSTER_OBJECT,
  ROUTING_LINEAGE_OBJECT,
  RoutingLineageRecorder,
  storeRoster,
  storeRoutingLineage,
} from '@lethe/ledger';
import { routingHealth } from '@lethe/metrics';
import { Split } from '@lethe/proto';
import { trainSisaModel } from '@lethe/sisa';
import type { JsonValue, ObjectRef, ObjectStore } from '@lethe/store';
import type { Logger } from 'pino';
import { evaluateDistributed } from '../inference/distributed-inference';
import {
  type JobContext,
  type JobOutcome,
  STEP_IDS_PER_JOB,
  stepProgress,
} from '../jobs/job-context';
import { modelSpecOf } from '../model/model-spec';
import type { ModelState } from '../model/current-model';
import type { StepTiming } from './expert-parallel-executor';
import type { ExpertDirectory } from '../workers/expert-directory';
import { type ExpertCheckpoint, ExpertSession } from '../workers/expert-session';
import { sisaProgressReporter, sisaShardTrainer } from './sisa-support';
import { ExpertParallelExecutor } from './expert-parallel-executor';
import type { TrainingRequest } from './training-request';

export interface TrainingRunnerDeps {
  store: ObjectStore;
  models: ModelState;
  directory: ExpertDirectory;
  log: Logger;
  workerDeadlineMs: number;
  checkpointEverySteps: number;
  /** Metrics: each expert-parallel step and each call to a worker. */
  metrics?: {
    recordStep(timing: StepTiming): void;
    recordWorkerRpc(method: string, seconds: number): void;
  };
  /** Persists the experts' latest checkpoints with the job. */
  saveCheckpoints: (jobId: string, checkpoints: Record<string, ExpertCheckpoint>) => void;
}

/**
 * Trains a new model jointly across the workers (expert parallelism) and publishes it in one
 * manifest revision: router and experts as content-addressed objects, the model card and the
 * training record — the same layout `lethe train` writes, so every other command works on it.
 */
export async function runTrainingJob(
  deps: TrainingRunnerDeps,
  request: TrainingRequest,
  job: JobContext,
): Promise<JobOutcome> {
  if (request.mode === 'sisa') return runSisaTraining(deps, request, job);
  const started = performance.now();
  const fullTrain = await deps.models.dataset(request.dataset, 'train');
  // Nothing the store's erasure ledger holds is trained on again; workers get sample indices,
  // so they need no copy of the exclusion.
  const { train, honoured } = await honourLedger(
    deps.store,
    limitTrainingSet(fullTrain, request.limit || undefined, request.seed),
  );
  job.log('info', describeHonoured(honoured));
  const test = await deps.models.dataset(request.dataset, 'test').catch(() => undefined);
  const normalise = defaultNormalisation(request.dataset, train);
  const batchSize = Math.min(request.batchSize, train.size);
  const model = new MoEModel({
    preset: request.preset,
    experts: request.experts,
    topK: request.topK,
    numClasses: train.classes.length,
    inputShape: [train.height, train.width, train.channels],
    routerNoise: request.routerNoise,
    balanceWeight: request.balanceWeight,
    specializeWeight: request.specializeWeight,
    seed: request.seed,
  });
  await deps.directory.setExpertCount(request.experts);
  const experts = Array.from({ length: request.experts }, (_, e) => e);
  const source = { $case: 'uri' as const, value: request.dataset };
  const session = new ExpertSession(deps.directory, deps.log, {
    model: modelSpecOf(model.config, normalise),
    datasets: {
      train: { source, split: Split.SPLIT_TRAIN, limit: 0 },
      ...(test ? { test: { source, split: Split.SPLIT_TEST, limit: 0 } } : {}),
    },
    checkpoints: new Map(),
    deadlineMs: deps.workerDeadlineMs,
    onRecovery: (message) => job.log('warn', message),
    ...(deps.metrics ? { onRpc: deps.metrics.recordWorkerRpc.bind(deps.metrics) } : {}),
  });
  // Mean step and RPC time over the run, reported with progress (and by bench/distributed).
  const timing = { steps: 0, stepSeconds: 0, rpcSeconds: 0 };
  const parallel = new ExpertParallelExecutor(session, deps.store, {
    onTiming: (t) => {
      timing.steps++;
      timing.stepSeconds += t.stepSeconds;
      timing.rpcSeconds += t.rpcSeconds;
      deps.metrics?.recordStep(t);
    },
    datasetKey: 'train',
    ...(request.augment ? { augmentation: { crop: 4, flip: true, seed: request.seed } } : {}),
    stepBase: job.seq * STEP_IDS_PER_JOB,
    remote: new Set(experts),
  });
  const checkpointAll = async (): Promise<void> => {
    await Promise.all(experts.map((e) => session.checkpoint(e)));
    deps.saveCheckpoints(job.jobId, Object.fromEntries(session.checkpoints));
  };
  // Which experts each sample was routed to, per epoch: what a sample forget will plan from.
  const lineage = new RoutingLineageRecorder(train.size, request.experts);
  // Checkpoints bound the work a lost worker costs: its experts resume from the latest one.
  const executor: StepExecutor = {
    step: async (m: MoEModel, context: StepContext): Promise<StepResult> => {
      const result = await parallel.step(m, context);
      lineage.record(context.epoch, context.batch.positions!, result.chosen);
      if ((context.globalStep + 1) % deps.checkpointEverySteps === 0) await checkpointAll();
      return result;
    },
  };
  const workers = await deps.directory.liveCount();
  try {
    job.log(
      'info',
      `training ${request.preset} MoE (E=${request.experts}, k=${request.topK}) on ${train.size} images across ${workers} workers`,
    );
    await Promise.all(experts.map((e) => session.ensure(e)));
    const stepsPerEpoch = Math.floor(train.size / batchSize);
    let imagesPerSecond = 0;
    const history: EpochSummary[] = await trainModel(model, {
      epochs: request.epochs,
      stepsPerEpoch,
      learningRate: request.learningRate,
      schedule: request.schedule,
      weightDecay: request.weightDecay,
      executor,
      signal: job.signal,
      batches: (epoch) =>
        new BatchSampler(train, {
          batchSize,
          seed: request.seed,
          shuffle: true,
          dropLast: true,
          normalise,
          ...(request.augment ? { augment: { crop: 4, flip: true } } : {}),
        }).epoch(epoch),
      onStep: (p) => {
        imagesPerSecond = p.imagesPerSecond;
        job.progress(
          stepProgress('train', p, request.epochs, {
            etaSeconds:
              (p.totalSteps - p.globalStep) * (batchSize / Math.max(1e-9, p.imagesPerSecond)),
            ...(timing.steps > 0
              ? {
                  stepSeconds: timing.stepSeconds / timing.steps,
                  rpcShare: timing.rpcSeconds / Math.max(1e-9, timing.stepSeconds),
                }
              : {}),
          }),
        );
      },
      onEpoch: async (summary) => {
        job.log(
          'info',
          `epoch ${summary.epoch + 1}/${request.epochs}: loss ${summary.loss.toFixed(4)}, accuracy ${(summary.accuracy * 100).toFixed(2)}%, ${summary.seconds.toFixed(1)} s`,
        );
        await checkpointAll();
      },
    });
    await checkpointAll();
    const evaluation = test
      ? await evaluateDistributed(model, session, 'test', test, normalise)
      : undefined;
    // On the test split, as served (no router noise): what a forget plan will see.
    const health =
      evaluation && evaluation.samples > 0
        ? routingHealth(evaluation.routing, request.topK)
        : undefined;
    if (evaluation) {
      job.log('info', `test accuracy ${(evaluation.accuracy * 100).toFixed(2)}%`);
    }
    if (health) {
      job.log(
        'info',
        `routing: mean collateral ${health.meanCollateral.toFixed(1)}%, utilisation ${health.minUtilisation.toFixed(2)}–${health.maxUtilisation.toFixed(2)} of fair` +
          (health.deadExperts.length > 0
            ? `; dead experts ${health.deadExperts.map((e) => `e${e}`).join(', ')}`
            : ''),
      );
    }
    job.progress({
      phase: 'publish',
      epoch: request.epochs,
      epochs: request.epochs,
      step: stepsPerEpoch,
      stepsPerEpoch,
      globalStep: request.epochs * stepsPerEpoch,
      totalSteps: request.epochs * stepsPerEpoch,
      loss: history.at(-1)?.loss ?? 0,
      accuracy: history.at(-1)?.accuracy ?? 0,
      imagesPerSecond,
      learningRate: 0,
    });
    const refs: Record<string, ObjectRef> = {
      ...(await storeParts(deps.store, model, ['router'])),
    } as Record<string, ObjectRef>;
    for (const e of experts) {
      const weights = session.checkpoints.get(e)?.weights;
      if (!weights) throw new Error(`expert ${e} has no checkpoint`);
      refs[`expert/${e}`] = weights;
    }
    const seconds = (performance.now() - started) / 1000;
    refs[ROSTER_OBJECT] = await storeRoster(deps.store, buildRoster(train));
    refs[ROUTING_LINEAGE_OBJECT] = await storeRoutingLineage(deps.store, lineage.toRecord());
    const manifest = await publishModel(
      deps.store,
      {
        config: model.config,
        classes: train.classes,
        normalisation: { mean: [...normalise.mean], std: [...normalise.std] },
      },
      refs,
      {
        expectRevision: await revisionHonouring(deps.store, honoured),
        attributes: {
          // Replaces the previous model's record of forgotten classes.
          forgotten: [],
          training: {
            mode: 'joint',
            dataset: request.dataset,
            datasetName: train.name,
            trainSize: train.size,
            limit: request.limit || null,
            epochs: request.epochs,
            batchSize,
            learningRate: request.learningRate,
            schedule: request.schedule,
            weightDecay: request.weightDecay,
            augment: request.augment,
            balanceWeight: request.balanceWeight,
            routerNoise: request.routerNoise,
            specializeWeight: request.specializeWeight,
            seed: request.seed,
            ledger: honoured as unknown as JsonValue,
            engine: engineInfo()?.engine ?? 'unknown',
            seconds,
            testAccuracy: evaluation?.accuracy ?? null,
            routingHealth: (health ?? null) as unknown as JsonValue,
            distributed: { workers, job: job.jobId },
            history: history.map((h) => ({
              epoch: h.epoch,
              loss: h.loss,
              accuracy: h.accuracy,
              seconds: h.seconds,
            })),
          },
        },
      },
    );
    return { manifestRevision: manifest.revision };
  } finally {
    model.dispose();
  }
}

/**
 * A sisa model: one expert per shard, each trained slice by slice on its worker with
 * lineage-addressed checkpoints; then the router here, with the shard models frozen.
 */
async function runSisaTraining(
  deps: TrainingRunnerDeps,
  request: TrainingRequest,
  job: JobContext,
): Promise<JobOutcome> {
  const train = limitTrainingSet(
    await deps.models.dataset(request.dataset, 'train'),
    request.limit || undefined,
    request.seed,
  );
  const normalise = defaultNormalisation(request.dataset, train);
  const sisa = request.sisa ?? { slices: 4, routerEpochs: 2 };
  job.log(
    'info',
    `training a sisa ${request.preset} MoE: ${request.experts} shards × ${sisa.slices} slices on ${train.size} images, each shard on its worker`,
  );
  const config = {
    preset: request.preset,
    experts: request.experts,
    topK: request.topK,
    numClasses: train.classes.length,
    inputShape: [train.height, train.width, train.channels] as [number, number, number],
    routerNoise: request.routerNoise,
    balanceWeight: request.balanceWeight,
    specializeWeight: request.specializeWeight,
    seed: request.seed,
  };
  const recipe = {
    config,
    normalise,
    epochsPerSlice: request.epochs,
    routerEpochs: sisa.routerEpochs,
    batchSize: Math.min(request.batchSize, train.size),
    learningRate: request.learningRate,
    weightDecay: request.weightDecay,
  };
  const trainer = await sisaShardTrainer(deps, job, request.dataset, train, recipe);
  const result = await trainSisaModel(deps.store, train, {
    trainer,
    dataset: request.dataset,
    ...(request.limit ? { limit: request.limit } : {}),
    ...recipe,
    classes: train.classes,
    slices: sisa.slices,
    assignment: 'uniform',
    onProgress: sisaProgressReporter(job),
    onStatus: (message) => job.log('info', message),
  });
  return { manifestRevision: result.manifest.revision };
}
