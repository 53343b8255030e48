import * as tf from '@tensorflow/tfjs-core';
import { batchToTensor, type ArrayBatch } from '../evaluation';
import type { ModulePart, MoEModel, StepResult, TrainOptions } from '../moe-model';
import { learningRateAt, type ScheduleName } from './learning-rate';

export interface TrainingRun {
  epochs: number;
  /**
   * Resumes a run at this epoch (0-based; default 0): epochs before it are done, and the model
   * holds their weights and training state (MoEModel.importTrainingState, or a StepExecutor's
   * own). The schedule continues at step startEpoch × stepsPerEpoch — each earlier epoch is taken
   * to have run stepsPerEpoch steps — and only the remaining epochs' summaries are returned.
   */
  startEpoch?: number;
  /** Batches of one epoch; called once per epoch so the caller reshuffles with a new seed. */
  batches: (epoch: number) => Iterable<ArrayBatch>;
  stepsPerEpoch: number;
  learningRate: number;
  schedule?: ScheduleName;
  weightDecay?: number;
  trainable?: ReadonlySet<ModulePart>;
  /** Batch norm normalises with, and keeps, its moving statistics (see ForwardOptions). */
  frozenBatchNorm?: boolean;
  /** See TrainOptions.routingLosses (default true). */
  routingLosses?: boolean;
  /** Per-batch step options, e.g. an unlearning loss or cached frozen-expert logits. */
  perBatch?: (batch: ArrayBatch, x: tf.Tensor4D) => Pick<TrainOptions, 'loss' | 'expertLogits'>;
  onStep?: (progress: StepProgress) => void;
  onEpoch?: (summary: EpochSummary) => void | Promise<void>;
  signal?: AbortSignal;
  /** Runs each step somewhere else than in this process (expert parallelism across workers). */
  executor?: StepExecutor;
}

/** Where a step runs: the batch, its tensors, and the options trainModel would pass trainStep. */
export interface StepContext {
  batch: ArrayBatch;
  x: tf.Tensor4D;
  y: tf.Tensor1D;
  options: TrainOptions;
  epoch: number;
  /** 0-based step over the whole run. */
  globalStep: number;
}

/**
 * Runs training steps in place of MoEModel.trainStep: e.g. on workers that host some experts,
 * with the router (and any local experts) stepping here.
 */
export interface StepExecutor {
  step(model: MoEModel, context: StepContext): Promise<StepResult>;
}

export interface StepProgress {
  epoch: number;
  step: number;
  stepsPerEpoch: number;
  globalStep: number;
  totalSteps: number;
  loss: number;
  accuracy: number;
  learningRate: number;
  imagesPerSecond: number;
}

export interface EpochSummary {
  epoch: number;
  loss: number;
  accuracy: number;
  images: number;
  seconds: number;
  /** Samples routed to each expert over the epoch (k per image). */
  expertLoad: number[];
  /** [class][expert] routing slots over the epoch, as trained (with router noise). */
  routing: number[][];
  /** Mean class–expert mutual information of the epoch's batches, in nats. */
  specialization: number;
}

/**
 * Trains the MoE jointly (router and experts under one loss). Yields to the event loop between
 * steps so progress output and signals are handled while a long run is in progress.
 */
export async function trainModel(model: MoEModel, run: TrainingRun): Promise<EpochSummary[]> {
  const totalSteps = run.epochs * run.stepsPerEpoch;
  const schedule = {
    name: run.schedule ?? 'one-cycle',
    learningRate: run.learningRate,
    totalSteps,
    warmupSteps: Math.min(200, Math.floor(totalSteps / 10)),
  };
  const startEpoch = run.startEpoch ?? 0;
  if (!Number.isInteger(startEpoch) || startEpoch < 0 || startEpoch > run.epochs) {
    throw new RangeError(`startEpoch must be an integer in 0..${run.epochs}, got ${startEpoch}`);
  }
  const history: EpochSummary[] = [];
  let globalStep = startEpoch * run.stepsPerEpoch;
  for (let epoch = startEpoch; epoch < run.epochs; epoch++) {
    const started = performance.now();
    let lossSum = 0;
    let correct = 0;
    let images = 0;
    let step = 0;
    const expertLoad = new Array<number>(model.config.experts).fill(0);
    const routing = Array.from({ length: model.config.numClasses }, () =>
      new Array<number>(model.config.experts).fill(0),
    );
    let specialization = 0;
    for (const batch of run.batches(epoch)) {
      if (run.signal?.aborted) throw new Error('training cancelled');
      const learningRate = learningRateAt(schedule, globalStep);
      const x = batchToTensor(model, batch);
      const y = tf.tensor1d(batch.y.subarray(0, batch.size), 'int32');
      const options: TrainOptions = {
        learningRate,
        weightDecay: run.weightDecay ?? 0,
        ...(run.trainable ? { trainable: run.trainable } : {}),
        ...(run.frozenBatchNorm ? { frozenBatchNorm: true } : {}),
        ...(run.routingLosses === false ? { routingLosses: false } : {}),
        ...run.perBatch?.(batch, x),
      };
      let result: StepResult;
      try {
        result = run.executor
          ? await run.executor.step(model, { batch, x, y, options, epoch, globalStep })
          : model.trainStep(x, y, options);
      } finally {
        tf.dispose([x, y]);
      }
      lossSum += result.loss * result.size;
      correct += result.correct;
      images += result.size;
      result.expertLoad.forEach((n, e) => (expertLoad[e]! += n));
      countSlots(routing, batch.y, result.chosen, model.config.topK);
      specialization += result.specialization;
      step++;
      globalStep++;
      run.onStep?.({
        epoch,
        step,
        stepsPerEpoch: run.stepsPerEpoch,
        globalStep,
        totalSteps,
        loss: result.loss,
        accuracy: result.correct / result.size,
        learningRate,
        imagesPerSecond: images / ((performance.now() - started) / 1000),
      });
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const summary: EpochSummary = {
      epoch,
      loss: lossSum / Math.max(1, images),
      accuracy: correct / Math.max(1, images),
      images,
      seconds: (performance.now() - started) / 1000,
      expertLoad,
      routing,
      specialization: specialization / Math.max(1, step),
    };
    history.push(summary);
    await run.onEpoch?.(summary);
  }
  return history;
}

function countSlots(table: number[][], labels: Int32Array, chosen: Int32Array, topK: number): void {
  for (let i = 0; i < chosen.length; i++) {
    const row = table[labels[Math.floor(i / topK)]!];
    if (row) row[chosen[i]!]!++;
  }
}
