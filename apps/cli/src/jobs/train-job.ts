import {
  batches,
  channelStats,
  type ChannelStats,
  type Dataset,
  defaultNormalisation,
  limitTrainingSet,
} from '@lethe/data';
import type { EngineInfo } from '@lethe/engine';
import {
  buildRoster,
  describeHonoured,
  type HonouredLedger,
  honourLedger,
  loadSubjectTable,
  revisionHonouring,
  ROSTER_OBJECT,
  ROUTING_LINEAGE_OBJECT,
  RoutingLineageRecorder,
  storeRoutingLineage,
  storeRoster,
  subjectsRecord,
} from '@lethe/ledger';
import {
  type EpochSummary,
  type Evaluation,
  MoEModel,
  type ScheduleName,
  saveModel,
  type StepProgress,
  trainModel,
} from '@lethe/model';
import { type RoutingHealth, routingHealth } from '@lethe/metrics';
import {
  evaluationOf,
  measureSample,
  modelOutputs,
  OutputMemo,
  outputsKey,
  pruneOutputMemos,
  saveOutputMemos,
  weightHashes,
} from '@lethe/unlearning';
import { type JsonValue, type ObjectStore } from '@lethe/store';
import { startEngine } from '../terminal/engine';
import { openData } from './open-data';

export interface TrainJobOptions {
  /** A dataset spec (`cifar10:DIR`…) or an already opened dataset pair. */
  data: string | { train: Dataset; test?: Dataset };
  store: ObjectStore;
  preset: string;
  experts: number;
  topK: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  schedule: ScheduleName;
  seed: number;
  augment: boolean;
  /** α of the load-balancing loss. */
  balanceWeight: number;
  /** Std-dev of router-logit noise while training. */
  routerNoise: number;
  /** β of the class–expert mutual-information loss (0: off). */
  specializeWeight: number;
  /** Train on a seeded random subset of this many training samples. */
  limit?: number;
  /** A CSV or JSONL sidecar mapping sample ids to data subjects. */
  subjects?: string;
  onStep?: (progress: StepProgress) => void;
  onEpoch?: (summary: EpochSummary) => void;
  onStatus?: (message: string) => void;
  /** Image decoding progress while an image folder is read. */
  onDecode?: (split: string, decoded: number, total: number) => void;
  signal?: AbortSignal;
}

export interface TrainJobResult {
  engine: EngineInfo;
  classes: string[];
  trainSize: number;
  history: EpochSummary[];
  test: Evaluation | undefined;
  /** Routing health on the test split; undefined without one. */
  routingHealth: RoutingHealth | undefined;
  manifestRevision: number;
  seconds: number;
  parameters: { router: number; expert: number; total: number };
  /** The erasure ledger this training honoured, and what it excluded. */
  ledger: HonouredLedger;
}

/** Trains a jointly routed MoE on a dataset, evaluates it on the test split and stores it. */
export async function runTrainJob(options: TrainJobOptions): Promise<TrainJobResult> {
  const started = performance.now();
  const status = options.onStatus ?? (() => undefined);
  let train: Dataset;
  let test: Dataset | undefined;
  let normalise: ChannelStats;
  if (typeof options.data === 'string') {
    status(`reading ${options.data}`);
    const decode = options.onDecode;
    const progress = (split: string) =>
      decode ? { onProgress: (done: number, total: number) => decode(split, done, total) } : {};
    train = await openData(options.data, 'train', progress('train'));
    test = await openData(options.data, 'test', progress('test'));
    normalise = defaultNormalisation(options.data, train);
  } else {
    train = options.data.train;
    test = options.data.test;
    normalise = channelStats(train);
  }
  // Checked against the full splits: a `--limit` subset is cut after.
  const subjects =
    options.subjects === undefined
      ? undefined
      : await loadSubjectTable(options.subjects, test ? [train, test] : [train]);
  train = limitTrainingSet(train, options.limit, options.seed);
  // Nothing the store's erasure ledger holds is trained on again.
  const honouring = await honourLedger(options.store, train, subjects);
  train = honouring.train;
  const { honoured } = honouring;
  status(describeHonoured(honoured));
  // After the data is read: a command that fails on its data says nothing about engines.
  const engine = await startEngine();
  const trainSize = train.size;
  const batchSize = Math.min(options.batchSize, trainSize);
  const model = new MoEModel({
    preset: options.preset,
    experts: options.experts,
    topK: options.topK,
    numClasses: train.classes.length,
    inputShape: [train.height, train.width, train.channels],
    routerNoise: options.routerNoise,
    balanceWeight: options.balanceWeight,
    specializeWeight: options.specializeWeight,
    seed: options.seed,
  });
  // Which experts each sample was routed to, per epoch: what a sample forget will plan from.
  const lineage = new RoutingLineageRecorder(trainSize, options.experts);
  try {
    status(
      `training ${options.preset} MoE (E=${options.experts}, k=${options.topK}) on ${trainSize} images of ${train.classes.length} classes`,
    );
    const history = await trainModel(model, {
      epochs: options.epochs,
      stepsPerEpoch: Math.floor(trainSize / batchSize),
      learningRate: options.learningRate,
      schedule: options.schedule,
      weightDecay: options.weightDecay,
      batches: (epoch) =>
        batches(train, {
          batchSize,
          seed: options.seed,
          epoch,
          shuffle: true,
          dropLast: true,
          normalise,
          ...(options.augment ? { augment: { crop: 4, flip: true } } : {}),
        }),
      executor: {
        step: (m, step) => {
          const result = m.trainStep(step.x, step.y, step.options);
          lineage.record(step.epoch, step.batch.positions!, result.chosen);
          return Promise.resolve(result);
        },
      },
      ...(options.onStep ? { onStep: options.onStep } : {}),
      ...(options.onEpoch ? { onEpoch: options.onEpoch } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    // The test outputs (and those of the seeded training sample every forget measures) are
    // kept with the model, so its first forget measures "before" without running them again.
    const testMemo = test ? OutputMemo.for(test, train.classes.length, options.topK) : undefined;
    const evaluation = test
      ? evaluationOf(modelOutputs(model, test, normalise, { memo: testMemo }), train.classes.length)
      : undefined;
    const health = evaluation ? evaluationHealth(evaluation, options.topK) : undefined;
    const seconds = (performance.now() - started) / 1000;
    const trained = buildRoster(train, subjects);
    const roster = await storeRoster(options.store, trained);
    const manifest = await saveModel(
      options.store,
      model,
      {
        classes: train.classes,
        normalisation: { mean: [...normalise.mean], std: [...normalise.std] },
      },
      {
        objects: {
          [ROSTER_OBJECT]: roster,
          [ROUTING_LINEAGE_OBJECT]: await storeRoutingLineage(options.store, lineage.toRecord()),
        },
        expectRevision: await revisionHonouring(options.store, honoured),
        attributes: {
          training: {
            mode: 'joint',
            dataset: typeof options.data === 'string' ? options.data : train.source,
            datasetName: train.name,
            trainSize,
            limit: options.limit ?? null,
            epochs: options.epochs,
            batchSize,
            learningRate: options.learningRate,
            schedule: options.schedule,
            weightDecay: options.weightDecay,
            augment: options.augment,
            balanceWeight: options.balanceWeight,
            routerNoise: options.routerNoise,
            specializeWeight: options.specializeWeight,
            seed: options.seed,
            ledger: honoured as unknown as JsonValue,
            subjects: subjectsRecord(trained),
            engine: engine.engine,
            seconds,
            testAccuracy: evaluation?.accuracy ?? null,
            // On the test split, as served (no router noise): what a forget plan will see.
            routingHealth: (health ?? null) as unknown as JsonValue,
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
    if (test && testMemo) {
      status('measuring the training sample that forget requests will compare against');
      const trainMemo = OutputMemo.for(train, train.classes.length, options.topK);
      modelOutputs(model, train, normalise, {
        positions: measureSample(train, 0),
        memo: trainMemo,
      });
      const key = outputsKey(weightHashes(manifest), train, test);
      await saveOutputMemos(options.store, { key, train: trainMemo, test: testMemo })
        .then(() => pruneOutputMemos(options.store, key))
        .catch((error: unknown) => status(`note: measured outputs not stored (${String(error)})`));
    }
    return {
      engine,
      classes: train.classes,
      trainSize,
      history,
      test: evaluation,
      routingHealth: health,
      manifestRevision: manifest.revision,
      seconds,
      parameters: model.countParameters(),
      ledger: honoured,
    };
  } finally {
    model.dispose();
  }
}

function evaluationHealth(evaluation: Evaluation, topK: number): RoutingHealth | undefined {
  return evaluation.count > 0 ? routingHealth(evaluation.routing, topK) : undefined;
}
