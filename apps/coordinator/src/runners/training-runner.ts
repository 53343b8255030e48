import {
  BatchSampler,
  type ChannelStats,
  type Dataset,
  defaultNormalisation,
  limitTrainingSet,
  type Rgb,
} from '@lethe/data';
import { engineInfo } from '@lethe/engine';
import {
  decodeOptimizerState,
  deserializeParameters,
  encodeOptimizerState,
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
  erasedOf,
  excludeErased,
  honourLedger,
  loadSubjectTable,
  readLedger,
  revisionHonouring,
  ROSTER_OBJECT,
  ROUTING_LINEAGE_OBJECT,
  RoutingLineageRecorder,
  type SubjectTable,
  storeRoster,
  storeRoutingLineage,
  subjectsRecord,
} from '@lethe/ledger';
import { routingHealth } from '@lethe/metrics';
import { Split } from '@lethe/proto';
import { DEFAULT_SISA_OPTIONS, trainSisaModel } from '@lethe/sisa';
import {
  getVerified,
  type JsonValue,
  type Manifest,
  ManifestStore,
  type ObjectRef,
  type ObjectStore,
  putContent,
} from '@lethe/store';
import {
  measureSample,
  OutputMemo,
  outputsKey,
  pruneOutputMemos,
  saveOutputMemos,
  weightHashes,
} from '@lethe/unlearning';
import type { Logger } from 'pino';
import { evaluateDistributed } from './distributed-inference';
import {
  type JobContext,
  type JobOutcome,
  STEP_IDS_PER_JOB,
  type StepTiming,
  stepProgress,
} from '../contract/job-context';
import { modelSpecOf } from '../model/model-spec';
import type { ModelState } from '../model/current-model';
import type { ExpertDirectory } from '../workers/expert-directory';
import { type ExpertCheckpoint, ExpertSession } from '../workers/expert-session';
import { sisaProgressReporter, sisaShardTrainer } from './sisa-support';
import { ExpertParallelExecutor } from './expert-parallel-executor';
import type { TrainingRequest } from '../contract/training-request';
import {
  deleteCheckpointObjects,
  readTrainingCheckpoint,
  requestFingerprint,
  type TrainingCheckpoint,
  trainingCheckpointKey,
  writeTrainingCheckpoint,
} from './training-checkpoint';

/** An epoch as the training record keeps it. */
type EpochRecord = TrainingCheckpoint['history'][number];

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
  const test = await deps.models.dataset(request.dataset, 'test').catch(() => undefined);
  const subjects = await trainingSubjects(request, test ? [fullTrain, test] : [fullTrain]);
  // Nothing the store's erasure ledger holds is trained on again (subjects included); workers
  // get sample indices, so they need no copy of the exclusion.
  const limited = limitTrainingSet(fullTrain, request.limit || undefined, request.seed);
  const { train, honoured } = await honourLedger(deps.store, limited, subjects);
  job.log('info', describeHonoured(honoured));
  // Workers get the statistics as proto floats: rounded here too, the router, the published
  // card and every expert normalise alike, and outputs measured here or on workers agree.
  const normalise = float32Stats(defaultNormalisation(request.dataset, train));
  const batchSize = Math.min(request.batchSize, train.size);
  const stepsPerEpoch = Math.floor(train.size / batchSize);
  const makeModel = (): MoEModel =>
    new MoEModel({
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
  const checkpointKey = trainingCheckpointKey(job.requestId ?? '', job.jobId);
  const fingerprint = requestFingerprint(request);
  if (job.restarted) {
    // Stopped after publishing but before the job was marked done: the model is out already.
    const published = await publishedBy(deps.store, job.jobId, fingerprint);
    if (published) {
      const stale = await readTrainingCheckpoint(deps.store, checkpointKey).catch(() => undefined);
      if (stale) await discardCheckpoint(deps.store, checkpointKey, stale, published.keys);
      job.log('info', `already published as revision ${published.revision} before the restart`);
      return { manifestRevision: published.revision };
    }
  }
  const resume = await usableCheckpoint(deps.store, checkpointKey, job, {
    fingerprint,
    epochs: request.epochs,
    experts: request.experts,
    stepsPerEpoch,
    trainSize: train.size,
    ledgerSha256: honoured.sha256,
  });
  let model = makeModel();
  let restored: Restored | undefined;
  if (resume) {
    try {
      restored = await restore(deps.store, model, resume);
    } catch (error) {
      // Hashes matched but the bytes do not fit this model: train from the start instead.
      job.log(
        'warn',
        `checkpoint ${checkpointKey} not usable (${messageOf(error)}); training from epoch 1`,
      );
      model.dispose();
      model = makeModel();
    }
  }
  await deps.directory.setExpertCount(request.experts);
  const experts = Array.from({ length: request.experts }, (_, e) => e);
  const source = { $case: 'uri' as const, value: request.dataset };
  const session = new ExpertSession(deps.directory, deps.log, {
    model: modelSpecOf(model.config, normalise),
    datasets: {
      train: { source, split: Split.SPLIT_TRAIN, limit: 0 },
      ...(test ? { test: { source, split: Split.SPLIT_TEST, limit: 0 } } : {}),
    },
    // Resumed experts load on their workers from the checkpoint's weights and optimizer state,
    // as of the last step before the resumed epoch in this job's step ids (a resubmitted
    // request's job numbers its steps anew).
    checkpoints: new Map(
      (restored?.experts ?? []).map(([e, c]) => [
        e,
        { ...c, lastStepId: job.seq * STEP_IDS_PER_JOB + resume!.epoch * stepsPerEpoch },
      ]),
    ),
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
  const lineage = restored?.lineage ?? new RoutingLineageRecorder(train.size, request.experts);
  const startEpoch = restored ? resume!.epoch : 0;
  const past: EpochRecord[] = restored ? [...resume!.history] : [];
  const secondsBefore = restored ? resume!.seconds : 0;
  let latest: TrainingCheckpoint | undefined = restored ? resume : undefined;
  /**
   * The run's state after `epochsDone` epochs into the store under the request id, replacing the
   * previous epoch's (whose own objects are deleted once nothing names them).
   */
  const saveEpoch = async (epochsDone: number, history: readonly EpochRecord[]): Promise<void> => {
    const saving = performance.now();
    const state = model.exportTrainingState(['router']);
    const checkpoint: TrainingCheckpoint = {
      schema: 1,
      requestId: job.requestId ?? '',
      jobId: job.jobId,
      fingerprint,
      epoch: epochsDone,
      epochs: request.epochs,
      stepsPerEpoch,
      trainSize: train.size,
      ledgerSha256: honoured.sha256,
      router: (await storeParts(deps.store, model, ['router'])).router!,
      routerOptimizer: await putContent(deps.store, encodeOptimizerState(state.optimizer), {
        kind: 'optimizer',
      }),
      weightDecay: state.weightDecay,
      noiseStep: state.noiseStep,
      experts: experts.map((e) => {
        const c = session.checkpoints.get(e);
        if (!c?.weights || !c.optimizerState) throw new Error(`expert ${e} has no checkpoint`);
        return {
          expert: e,
          weights: c.weights,
          optimizerState: c.optimizerState,
          lastStepId: c.lastStepId,
        };
      }),
      lineage: await storeRoutingLineage(deps.store, lineage.toRecord()),
      history: [...history],
      seconds: secondsBefore + (performance.now() - started) / 1000,
      writtenAt: new Date().toISOString(),
    };
    await writeTrainingCheckpoint(deps.store, checkpointKey, checkpoint);
    if (latest) {
      const keep = new Set([
        ...(await publishedKeys(deps.store)),
        ...[checkpoint.router, checkpoint.routerOptimizer, checkpoint.lineage].map((r) => r.key),
        ...checkpoint.experts.flatMap((x) => [x.weights.key, x.optimizerState.key]),
      ]);
      await deleteCheckpointObjects(deps.store, latest, keep);
    }
    latest = checkpoint;
    job.log(
      'info',
      `checkpoint of epoch ${epochsDone}/${request.epochs} stored (${Math.round(performance.now() - saving)} ms)`,
    );
  };
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
    if (restored) {
      job.log(
        'info',
        `resuming from the checkpoint of epoch ${startEpoch}/${request.epochs} (written by ${resume!.jobId} at ${resume!.writtenAt}): epochs 1–${startEpoch} are not trained again`,
      );
    }
    await Promise.all(experts.map((e) => session.ensure(e)));
    let imagesPerSecond = 0;
    const history: EpochRecord[] = [...past];
    await trainModel(model, {
      epochs: request.epochs,
      startEpoch,
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
        history.push({
          epoch: summary.epoch,
          loss: summary.loss,
          accuracy: summary.accuracy,
          seconds: summary.seconds,
        });
        await saveEpoch(summary.epoch + 1, history);
      },
    });
    await checkpointAll();
    // The test outputs are kept with the model (storeOutputs), for its first forget's "before".
    const testMemo = test ? OutputMemo.for(test, train.classes.length, request.topK) : undefined;
    const evaluation =
      test && testMemo
        ? await evaluateDistributed(model, session, 'test', test, normalise, {
            memo: testMemo,
            signal: job.signal,
          })
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
    const seconds = secondsBefore + (performance.now() - started) / 1000;
    const roster = buildRoster(train, subjects);
    refs[ROSTER_OBJECT] = await storeRoster(deps.store, roster);
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
            subjects: subjectsRecord(roster),
            engine: engineInfo()?.engine ?? 'unknown',
            seconds,
            testAccuracy: evaluation?.accuracy ?? null,
            routingHealth: (health ?? null) as unknown as JsonValue,
            distributed: {
              workers,
              job: job.jobId,
              requestId: job.requestId ?? '',
              fingerprint,
              resumedFromEpoch: startEpoch,
            },
            history: history.map((h) => ({ ...h })),
          },
        },
      },
    );
    // The model is out: its checkpoint has done its work (objects the model uses stay).
    if (latest) {
      const keep = new Set(Object.values(manifest.objects).map((r) => r.key));
      await discardCheckpoint(deps.store, checkpointKey, latest, keep);
    }
    if (test && testMemo) {
      await storeOutputs(deps.store, job, manifest, {
        model,
        session,
        normalise,
        limited,
        test,
        testMemo,
      });
    }
    return { manifestRevision: manifest.revision };
  } finally {
    model.dispose();
  }
}

function float32Stats({ mean, std }: ChannelStats): ChannelStats {
  const round = ([r, g, b]: Rgb): Rgb => [Math.fround(r), Math.fround(g), Math.fround(b)];
  return { mean: round(mean), std: round(std) };
}

/**
 * Stores the published weights' outputs on the test split (the evaluation's) and on the seeded
 * training sample every `sample` forget measures, under the key the forget runner looks up, so
 * the first forget measures its "before" without running them again — as after `lethe train`.
 * Best effort: the model is out already, so a failure or a cancellation only logs a note.
 */
async function storeOutputs(
  store: ObjectStore,
  job: JobContext,
  manifest: Manifest,
  run: {
    model: MoEModel;
    session: ExpertSession;
    normalise: ChannelStats;
    /** The training set before the ledger's exclusion, limited as trained. */
    limited: Dataset;
    test: Dataset;
    testMemo: OutputMemo;
  },
): Promise<void> {
  try {
    // The training set as libs/unlearning's forgets see it: the limited set less the ledger's
    // erasures, without the subject table (a forget has none), so the seeded sample is theirs.
    const train = excludeErased(run.limited, erasedOf(await readLedger(store, manifest))).train;
    const { numClasses, topK } = run.model.config;
    const trainMemo = OutputMemo.for(train, numClasses, topK);
    job.log('info', 'measuring the training sample that forget requests will compare against');
    await evaluateDistributed(run.model, run.session, 'train', train, run.normalise, {
      positions: measureSample(train, 0),
      memo: trainMemo,
      signal: job.signal,
    });
    const key = outputsKey(weightHashes(manifest), train, run.test);
    await saveOutputMemos(store, { key, train: trainMemo, test: run.testMemo });
    await pruneOutputMemos(store, key);
  } catch (error) {
    job.log('warn', `note: measured outputs not stored (${messageOf(error)})`);
  }
}

/**
 * The request's subject table, checked against the full splits as at admission; the bytes must
 * be those admission checked, or the job fails rather than train with another table.
 */
async function trainingSubjects(
  request: TrainingRequest,
  datasets: readonly Dataset[],
): Promise<SubjectTable | undefined> {
  if (request.subjects === undefined) return undefined;
  const table = await loadSubjectTable(request.subjects, datasets);
  if (request.subjectsSha256 !== undefined && table.sha256 !== request.subjectsSha256) {
    throw new Error(
      `subject table ${request.subjects} changed since the request was accepted (sha256 ${table.sha256.slice(0, 12)}…, accepted ${request.subjectsSha256.slice(0, 12)}…)`,
    );
  }
  return table;
}

/** What a checkpoint restores besides the router, which it loads into the model. */
interface Restored {
  experts: [number, ExpertCheckpoint][];
  lineage: RoutingLineageRecorder;
}

const messageOf = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).split('\n')[0]!;

/** Keys of the objects the published manifest names (none before a first model). */
async function publishedKeys(store: ObjectStore): Promise<string[]> {
  const current = await new ManifestStore(store).read();
  return current ? Object.values(current.objects).map((r) => r.key) : [];
}

/** The revision this job published, when the current one is it (same job, same request). */
async function publishedBy(
  store: ObjectStore,
  jobId: string,
  fingerprint: string,
): Promise<{ revision: number; keys: Set<string> } | undefined> {
  const current = await new ManifestStore(store).read();
  const training = current?.attributes['training'];
  const distributed =
    training && typeof training === 'object' && !Array.isArray(training)
      ? training['distributed']
      : undefined;
  if (
    !current ||
    !distributed ||
    typeof distributed !== 'object' ||
    Array.isArray(distributed) ||
    distributed['job'] !== jobId ||
    distributed['fingerprint'] !== fingerprint
  ) {
    return undefined;
  }
  return {
    revision: current.revision,
    keys: new Set(Object.values(current.objects).map((r) => r.key)),
  };
}

/**
 * The stored checkpoint of this request when it can resume this run; otherwise undefined, after
 * saying why on the job's log and deleting one that belongs to another run of the request.
 */
async function usableCheckpoint(
  store: ObjectStore,
  key: string,
  job: JobContext,
  run: {
    fingerprint: string;
    epochs: number;
    experts: number;
    stepsPerEpoch: number;
    trainSize: number;
    ledgerSha256: string | null;
  },
): Promise<TrainingCheckpoint | undefined> {
  let checkpoint: TrainingCheckpoint | undefined;
  try {
    checkpoint = await readTrainingCheckpoint(store, key);
  } catch (error) {
    job.log('warn', `${messageOf(error)}; training from epoch 1`);
    return undefined;
  }
  if (!checkpoint) return undefined;
  const differs =
    checkpoint.fingerprint !== run.fingerprint
      ? 'another request'
      : checkpoint.epochs !== run.epochs || checkpoint.stepsPerEpoch !== run.stepsPerEpoch
        ? 'another length of run'
        : checkpoint.trainSize !== run.trainSize || checkpoint.ledgerSha256 !== run.ledgerSha256
          ? 'another training set (the erasure ledger changed since)'
          : checkpoint.epoch > run.epochs || checkpoint.experts.length !== run.experts
            ? 'an inconsistent state'
            : undefined;
  if (differs) {
    job.log('warn', `checkpoint ${key} is of ${differs}; training from epoch 1`);
    await discardCheckpoint(store, key, checkpoint, new Set(await publishedKeys(store)));
    return undefined;
  }
  return checkpoint;
}

/**
 * Loads the checkpoint's router and its optimizer state into `model`, and reads the rest; every
 * object is read and hash-checked before anything changes.
 */
async function restore(
  store: ObjectStore,
  model: MoEModel,
  checkpoint: TrainingCheckpoint,
): Promise<Restored> {
  const [router, optimizer, lineage] = await Promise.all([
    getVerified(store, checkpoint.router),
    getVerified(store, checkpoint.routerOptimizer),
    getVerified(store, checkpoint.lineage),
  ]);
  await Promise.all(
    checkpoint.experts.flatMap((e) => [
      store.head(e.weights.key).then((info) => {
        if (info?.sha256 !== e.weights.sha256)
          throw new Error(`expert ${e.expert}'s weights are gone`);
      }),
      store.head(e.optimizerState.key).then((info) => {
        if (info?.sha256 !== e.optimizerState.sha256)
          throw new Error(`expert ${e.expert}'s optimizer state is gone`);
      }),
    ]),
  );
  const recorder = RoutingLineageRecorder.fromRecord(
    JSON.parse(new TextDecoder().decode(lineage)) as Parameters<
      typeof RoutingLineageRecorder.fromRecord
    >[0],
  );
  if (
    recorder.samples !== checkpoint.trainSize ||
    recorder.toRecord().epochs.length !== checkpoint.epoch
  ) {
    throw new Error('its routing lineage does not match its epochs');
  }
  const state = decodeOptimizerState(optimizer);
  deserializeParameters(model.router.params, router);
  model.importTrainingState(['router'], {
    optimizer: state,
    weightDecay: checkpoint.weightDecay,
    noiseStep: checkpoint.noiseStep,
  });
  return {
    experts: checkpoint.experts.map((e) => [
      e.expert,
      { weights: e.weights, optimizerState: e.optimizerState, lastStepId: e.lastStepId },
    ]),
    lineage: recorder,
  };
}

/** Deletes a checkpoint record, then its objects that `keep` does not name. */
async function discardCheckpoint(
  store: ObjectStore,
  key: string,
  checkpoint: TrainingCheckpoint,
  keep: ReadonlySet<string>,
): Promise<void> {
  // The record first: a crash in between leaves garbage objects, never a record naming none.
  await store.delete(key);
  await deleteCheckpointObjects(store, checkpoint, keep);
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
  const fullTrain = await deps.models.dataset(request.dataset, 'train');
  const test = await deps.models.dataset(request.dataset, 'test').catch(() => undefined);
  const subjects = await trainingSubjects(request, test ? [fullTrain, test] : [fullTrain]);
  const train = limitTrainingSet(fullTrain, request.limit || undefined, request.seed);
  const normalise = defaultNormalisation(request.dataset, train);
  const sisa = request.sisa ?? DEFAULT_SISA_OPTIONS;
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
  // The first slice each shard trains: the ones before it came from stored checkpoints (a
  // rerun after a restart trains only what the interrupted run had not finished).
  const firstTrained = new Map<number, number>();
  const progress = sisaProgressReporter(job);
  const result = await trainSisaModel(deps.store, train, {
    trainer,
    dataset: request.dataset,
    ...(request.limit ? { limit: request.limit } : {}),
    ...(subjects ? { subjects } : {}),
    ...recipe,
    classes: train.classes,
    slices: sisa.slices,
    assignment: 'uniform',
    onProgress: (p) => {
      if (p.phase === 'train-shard' && p.shard !== undefined && !firstTrained.has(p.shard)) {
        firstTrained.set(p.shard, p.slice ?? 0);
      }
      progress(p);
    },
    onStatus: (message) => job.log('info', message),
  });
  const slices = request.experts * sisa.slices;
  let reused = 0;
  for (let shard = 0; shard < request.experts; shard++) {
    reused += firstTrained.get(shard) ?? sisa.slices;
  }
  if (reused > 0) {
    job.log(
      'info',
      `${reused} of ${slices} shard slices came from stored checkpoints and were not trained again`,
    );
  }
  return { manifestRevision: result.manifest.revision };
}
