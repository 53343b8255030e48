import { batches, defaultNormalisation, formatSampleId, limitTrainingSet } from '@lethe/data';
import { loadSubjectTable } from '@lethe/ledger';
import { evaluate, type Evaluation, loadModel } from '@lethe/model';
import {
  forgetSamples,
  loadSisa,
  planSisaForget,
  type SisaForgetPlan,
  SisaRequestError,
  type ShardAssignment,
  type SisaProgress,
  type SisaReceipt,
  trainSisaModel,
} from '@lethe/sisa';
import type { ObjectStore } from '@lethe/store';
import { CliError } from '../terminal/errors';
import { Progress } from '../terminal/progress';
import { table } from '../terminal/tables';
import { openData } from './open-data';
import { expandSubjects } from './subject-samples';
import type { TrainJobOptions } from './train-job';

/** The joint job's recipe fields, plus the sisa layout; sisa trains without augmentation. */
export interface SisaTrainJob extends Pick<
  TrainJobOptions,
  | 'store'
  | 'preset'
  | 'experts'
  | 'topK'
  | 'epochs'
  | 'batchSize'
  | 'learningRate'
  | 'weightDecay'
  | 'seed'
  | 'balanceWeight'
  | 'routerNoise'
  | 'limit'
> {
  data: string;
  slices: number;
  assignment: ShardAssignment;
  routerEpochs: number;
  routerFraction: number;
  /** A CSV or JSONL sidecar mapping sample ids to data subjects. */
  subjects?: string;
}

/** A progress line for sisa work: which shard and slice, or the router. */
export function sisaProgress(): { onProgress: (p: SisaProgress) => void; stop: () => void } {
  const bar = new Progress(
    '{phase} {where} | epoch {epoch} step {step} | loss {loss} | {duration_formatted}',
    (v) => `${v['phase']} ${v['where']} epoch ${v['epoch']} step ${v['step']} loss ${v['loss']}`,
  );
  let started = false;
  let steps = 0;
  return {
    onProgress: (p) => {
      const values = {
        phase: p.phase,
        where: p.phase === 'train-shard' ? `shard ${p.shard} slice ${p.slice}` : '',
        epoch: p.epoch + 1,
        step: p.step,
        loss: p.loss.toFixed(4),
      };
      if (!started) {
        bar.start(0, values);
        started = true;
      }
      bar.update(++steps, 0, values);
    },
    stop: () => bar.stop(),
  };
}

/** Trains a sisa model (one expert per shard, slice by slice, then the router) and evaluates it. */
export async function runSisaTrainJob(
  job: SisaTrainJob,
  onProgress?: (p: SisaProgress) => void,
  onStatus?: (message: string) => void,
): Promise<{
  revision: number;
  seconds: number;
  test: Evaluation | undefined;
  trainSize: number;
  classes: string[];
}> {
  const fullTrain = await openData(job.data, 'train');
  const test = await openData(job.data, 'test');
  const subjects =
    job.subjects === undefined
      ? undefined
      : await loadSubjectTable(job.subjects, [fullTrain, test]);
  const train = limitTrainingSet(fullTrain, job.limit, job.seed);
  const normalise = defaultNormalisation(job.data, train);
  const result = await trainSisaModel(job.store, train, {
    dataset: job.data,
    ...(job.limit ? { limit: job.limit } : {}),
    config: {
      preset: job.preset,
      experts: job.experts,
      topK: job.topK,
      numClasses: train.classes.length,
      inputShape: [train.height, train.width, train.channels],
      routerNoise: job.routerNoise,
      balanceWeight: job.balanceWeight,
      seed: job.seed,
    },
    classes: train.classes,
    normalise,
    slices: job.slices,
    assignment: job.assignment,
    epochsPerSlice: job.epochs,
    routerEpochs: job.routerEpochs,
    routerFraction: job.routerFraction,
    batchSize: job.batchSize,
    learningRate: job.learningRate,
    weightDecay: job.weightDecay,
    ...(onProgress ? { onProgress } : {}),
    ...(subjects ? { subjects } : {}),
    ...(onStatus ? { onStatus } : {}),
  });
  let evaluation: Evaluation | undefined;
  if (test) {
    const { model } = await loadModel(job.store);
    evaluation = evaluate(model, batches(test, { batchSize: 256, shuffle: false, normalise }));
    model.dispose();
  }
  return {
    revision: result.manifest.revision,
    seconds: result.seconds,
    test: evaluation,
    trainSize: train.size,
    classes: train.classes,
  };
}

/** Forgets training samples of the stored sisa model exactly, by replay. */
export async function runSisaForgetJob(
  store: ObjectStore,
  request: { requestId: string; sampleIds: string[]; subjects?: string[]; data?: string },
  onProgress?: (p: SisaProgress) => void,
): Promise<SisaReceipt> {
  const { dataset, limit, card } = await loadSisa(store);
  const data = request.data ?? dataset;
  const train = limitTrainingSet(
    await openData(data, 'train'),
    limit ?? undefined,
    card.config.seed,
  );
  return forgetSamples(store, train, request, onProgress);
}

/** A sisa forget request as `lethe forget` names it: sample ids, or data subjects. */
export type SisaTarget = { sampleIds: string[] } | { subjects: string[] };

/**
 * `lethe forget … --dry-run` on a sisa model: the checks of a real request, then which shards
 * and slices the replay would retrain and its seconds at the rate stored with the model.
 * Reads the store and the training data; writes nothing and starts no engine.
 */
export async function previewSisaForgetJob(
  store: ObjectStore,
  request: SisaTarget & { requestId?: string; data?: string },
): Promise<SisaForgetPlan> {
  let sampleIds: string[];
  let subjects: string[] | undefined;
  if ('subjects' in request) {
    const expansion = await expandSubjects(store, request.subjects);
    if (expansion.kind === 'forgotten') {
      throw new CliError(
        `failed precondition: subject ${expansion.subject}, erased by request ${expansion.requestId}, is already forgotten`,
      );
    }
    sampleIds = expansion.sampleIds;
    subjects = request.subjects;
  } else sampleIds = request.sampleIds;
  const { dataset, limit, card } = await loadSisa(store);
  const train = limitTrainingSet(
    await openData(request.data ?? dataset, 'train'),
    limit ?? undefined,
    card.config.seed,
  );
  try {
    return await planSisaForget(store, train, {
      sampleIds,
      ...(subjects ? { subjects } : {}),
      ...(request.requestId ? { requestId: request.requestId } : {}),
    });
  } catch (error) {
    if (error instanceof SisaRequestError) {
      throw new CliError(`${error.code.replace('-', ' ')}: ${error.message}`);
    }
    throw error;
  }
}

/** A sisa dry run: the shards and slices a replay would retrain, the work, the seconds. */
export function printSisaPlan(plan: SisaForgetPlan): void {
  if (plan.completed) {
    console.log(
      'dry run: this request id already completed with these samples; a real run returns its receipt and replays nothing',
    );
    return;
  }
  console.log(
    `dry run: forgetting ${plan.samples} sample${plan.samples === 1 ? '' : 's'} exactly on manifest revision ${plan.manifestRevision} would replay ${plan.replay.length} of ${plan.shards} shards (R=${plan.slices} slices each), then retrain the router (${plan.routerEpochs} epoch(s))`,
  );
  console.log(
    table([
      ['shard', 'samples removed', 'slices replayed', 'work (samples × epochs)'],
      ...plan.replay.map((r) => [
        String(r.shard),
        String(r.samplesRemoved),
        r.slicesReplayed.join(', '),
        String(r.sampleEpochs),
      ]),
    ]),
  );
  const { sampleEpochs, fullTrainingSampleEpochs } = plan.work;
  console.log(
    `work: ${sampleEpochs} sample-epochs of shard training, ${((100 * sampleEpochs) / Math.max(1, fullTrainingSampleEpochs)).toFixed(0)}% of a full sisa retraining (${fullTrainingSampleEpochs})`,
  );
  const e = plan.estimate;
  console.log(
    e
      ? `estimate: about ${e.totalSeconds.toFixed(0)} s (shards ${e.replaySeconds.toFixed(0)} s, router ${e.routerSeconds.toFixed(0)} s) at the ${e.rate.sampleEpochsPerSecond.toFixed(0)} sample-epochs/s measured by the last ${e.rate.source} (${e.rate.measuredAt})`
      : 'estimate: no rate yet (the model was trained before rates were recorded; its next replay records one)',
  );
  console.log('nothing was changed');
}

/** Whether the store's current model was trained with --mode sisa. */
export async function holdsSisaModel(store: ObjectStore): Promise<boolean> {
  return loadSisa(store).then(
    () => true,
    () => false,
  );
}

/**
 * The training samples of a class of the stored sisa model (name or index): what forgetting the
 * class exactly means on a sisa model.
 */
export async function classSampleIds(
  store: ObjectStore,
  className: string,
  data?: string,
): Promise<string[]> {
  const { dataset, limit, card } = await loadSisa(store);
  const train = limitTrainingSet(
    await openData(data ?? dataset, 'train'),
    limit ?? undefined,
    card.config.seed,
  );
  const byName = card.classes.indexOf(className);
  const classIndex =
    byName >= 0 ? byName : /^\d+$/.test(className) ? Number(className) : Number.NaN;
  if (!(classIndex >= 0 && classIndex < card.classes.length)) {
    throw new Error(
      `unknown class ${JSON.stringify(className)} (classes: ${card.classes.join(', ')})`,
    );
  }
  const ids: string[] = [];
  for (let p = 0; p < train.size; p++) {
    if (train.labels[p] === classIndex)
      ids.push(formatSampleId(train.name, 'train', train.indices[p]!));
  }
  return ids;
}
