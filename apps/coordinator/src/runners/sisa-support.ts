import type { Dataset } from '@lethe/data';
import { Split } from '@lethe/proto';
import type { ShardTrainer, SisaProgress, SisaRecipe } from '@lethe/sisa';
import type { Logger } from 'pino';
import { type JobContext, STEP_IDS_PER_JOB } from '../contract/job-context';
import { modelSpecOf } from '../model/model-spec';
import type { ExpertDirectory } from '../workers/expert-directory';
import { ExpertSession } from '../workers/expert-session';
import { remoteShardTrainer } from './remote-shard-trainer';

/** What a sisa job needs of the coordinator to train shards on workers. */
export interface SisaWorkerDeps {
  directory: ExpertDirectory;
  log: Logger;
  workerDeadlineMs: number;
  metrics?: { recordWorkerRpc(method: string, seconds: number): void };
}

/**
 * Sisa shard models trained on the workers that host them (see remoteShardTrainer): an expert
 * session over the training data, with a fresh optimizer wherever a shard starts from a
 * checkpoint, and a job that fails rather than lose steps when a worker does.
 */
export async function sisaShardTrainer(
  deps: SisaWorkerDeps,
  job: JobContext,
  dataset: string,
  train: Dataset,
  recipe: SisaRecipe,
): Promise<ShardTrainer> {
  await deps.directory.setExpertCount(recipe.config.experts);
  // The session reports recoveries to the trainer it is made for, which exists only after it.
  const made: { trainer?: ReturnType<typeof remoteShardTrainer> } = {};
  const session = new ExpertSession(deps.directory, deps.log, {
    model: modelSpecOf(recipe.config, recipe.normalise),
    datasets: {
      train: { source: { $case: 'uri', value: dataset }, split: Split.SPLIT_TRAIN, limit: 0 },
    },
    checkpoints: new Map(),
    freshOptimizer: true,
    deadlineMs: deps.workerDeadlineMs,
    onRecovery: (message) => {
      job.log('warn', message);
      made.trainer?.fail(message);
    },
    ...(deps.metrics ? { onRpc: deps.metrics.recordWorkerRpc.bind(deps.metrics) } : {}),
  });
  made.trainer = remoteShardTrainer(session, train, recipe, job.seq * STEP_IDS_PER_JOB);
  return made.trainer;
}

/** Sisa progress as job progress: the phase, and the shard and slice being trained. */
export function sisaProgressReporter(job: JobContext): (p: SisaProgress) => void {
  let steps = 0;
  return (p) => {
    steps++;
    job.progress({
      phase: p.phase,
      epoch: p.epoch + 1,
      epochs: 0,
      step: p.step,
      stepsPerEpoch: 0,
      globalStep: steps,
      totalSteps: 0,
      loss: p.loss,
      accuracy: 0,
      imagesPerSecond: 0,
      learningRate: 0,
      ...(p.shard === undefined ? {} : { shard: p.shard }),
      ...(p.slice === undefined ? {} : { slice: p.slice }),
    });
  };
}
