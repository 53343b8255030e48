import {
  FORGET_RATES_ATTRIBUTE,
  type ForgetRate,
  forgetRateModel,
  readForgetRates,
  withForgetRate,
} from '@lethe/ledger';
import {
  type EpochSummary,
  type MoEConfig,
  recordedTrainingRate,
  type TrainingRecord,
} from '@lethe/model';
import type { JsonValue, Manifest } from '@lethe/store';
import type { MeasuredOutputs } from './output-memo';

/** The rates an estimate's seconds are computed at, and where they were measured. */
export interface EstimateRate {
  /** `forget`: the last forget of the same kind and method on this store; `training`: the model's. */
  source: 'forget' | 'training';
  /** The forget request measured (empty for `training`). */
  requestId: string;
  measuredAt: Date | undefined;
  /** Retraining images per second. */
  retrainingRate: number;
  /** Measurement (inference) samples per second. */
  inferenceRate: number;
}

/** The work a forget request implies, and seconds at the last measured rate. */
export interface ForgetEstimate {
  /** Samples each retraining epoch visits (forgotten + the retained subset, as the method uses). */
  trainingSamples: number;
  epochs: number;
  expertsRetrained: number;
  /** Training samples × experts retrained × epochs: the expert work, next to training's. */
  expertSampleWork: number;
  /** Samples the before and after measurements each run the model on. */
  measuredSamples: number;
  /**
   * Of those, the samples whose outputs on these weights the store already holds (measured by
   * training's evaluation or the previous forget's "after"): the "before" skips them.
   */
  measuredBeforeReused: number;
  /** Training images per second the stored model was trained at (its training record). */
  trainingRate: number | undefined;
  /** The rates the seconds assume; undefined when nothing was measured yet. */
  rate: EstimateRate | undefined;
  seconds: { retraining: number; measurement: number; total: number } | undefined;
}

/** What a forget retrains, as its job plans it. */
export interface ForgetWork {
  trainingSamples: number;
  epochs: number;
  expertsRetrained: number;
  /** Samples the original model runs on once before retraining (a distillation teacher's). */
  teacherSamples: number;
  /** Worker threads the before/after measurement is split across (default 1). */
  measureThreads?: number;
}

/**
 * Seconds at the last measured rate: the previous forget of the same kind and method on this
 * store when there is one (its retraining and its "after" measurement, timed), else the model's
 * training rate, where a retraining step costs about a training step and an inference pass (the
 * teacher's, a measurement's) about a third, and the measurement's threads each run at that rate
 * (a measured forget rate already includes them). The "before" skips what the output memo holds.
 */
export function estimateForget(
  work: ForgetWork,
  measured: MeasuredOutputs,
  training: TrainingRecord | undefined,
  lastForget?: ForgetRate,
): ForgetEstimate {
  const { trainingSamples, epochs, expertsRetrained, teacherSamples } = work;
  const threads = Math.max(1, Math.floor(work.measureThreads ?? 1));
  const trainingRate = recordedTrainingRate(training);
  const rate: EstimateRate | undefined = lastForget
    ? {
        source: 'forget',
        requestId: lastForget.requestId,
        measuredAt: new Date(lastForget.measuredAt),
        retrainingRate: lastForget.retrainingRate,
        inferenceRate: lastForget.inferenceRate,
      }
    : trainingRate
      ? {
          source: 'training',
          requestId: '',
          measuredAt: undefined,
          retrainingRate: trainingRate,
          inferenceRate: 3 * trainingRate,
        }
      : undefined;
  const seconds = (() => {
    if (!rate) return undefined;
    const retraining =
      (trainingSamples * epochs) / rate.retrainingRate + teacherSamples / rate.inferenceRate;
    const { measuredSamples, measuredBeforeReused } = measured;
    // The teacher's pass runs in the job's thread; the measurement on its threads.
    const measureRate =
      rate.source === 'training' ? rate.inferenceRate * threads : rate.inferenceRate;
    const measurement =
      (2 * measuredSamples - Math.min(measuredSamples, measuredBeforeReused)) / measureRate;
    return { retraining, measurement, total: retraining + measurement };
  })();
  return {
    trainingSamples,
    epochs,
    expertsRetrained,
    expertSampleWork: trainingSamples * expertsRetrained * epochs,
    measuredSamples: measured.measuredSamples,
    measuredBeforeReused: measured.measuredBeforeReused,
    trainingRate,
    rate,
    seconds,
  };
}

/**
 * The rates a finished forget ran at, to store for the next estimate: images per second over its
 * retraining epochs and samples per second of its "after" measurement. Undefined when either
 * was not timed (no epoch, or nothing measured).
 */
export function measuredForgetRate(
  run: { requestId: string; model: string },
  history: readonly Pick<EpochSummary, 'images' | 'seconds'>[],
  after: { samples: number; seconds: number },
): ForgetRate | undefined {
  const images = history.reduce((n, h) => n + h.images, 0);
  const seconds = history.reduce((n, h) => n + h.seconds, 0);
  if (!(images > 0 && seconds > 0 && after.samples > 0 && after.seconds > 0)) return undefined;
  return {
    requestId: run.requestId,
    measuredAt: new Date().toISOString(),
    model: run.model,
    retrainingRate: images / seconds,
    inferenceRate: after.samples / after.seconds,
  };
}

/** The stored rate of the last forget under `key`, when it ran on a model of this shape. */
export function lastForgetRate(
  manifest: Manifest,
  key: string,
  config: Pick<MoEConfig, 'preset' | 'experts' | 'topK'>,
): ForgetRate | undefined {
  const rate = readForgetRates(manifest)[key];
  return rate?.model === forgetRateModel(config) ? rate : undefined;
}

/** The manifest attribute a finished forget publishes with its receipt: its measured rate. */
export function forgetRateAttribute(
  manifest: Manifest,
  key: string,
  requestId: string,
  model: { config: Pick<MoEConfig, 'preset' | 'experts' | 'topK'> },
  receipt: {
    history: readonly Pick<EpochSummary, 'images' | 'seconds'>[];
    metrics: {
      after: {
        seconds: number;
        measuredOn: { trainForgotten: number; trainRetained: number; test: number };
      };
    };
  },
): Record<string, JsonValue> {
  const { after } = receipt.metrics;
  const rate = measuredForgetRate(
    { requestId, model: forgetRateModel(model.config) },
    receipt.history,
    {
      samples:
        after.measuredOn.trainForgotten + after.measuredOn.trainRetained + after.measuredOn.test,
      seconds: after.seconds,
    },
  );
  return rate ? { [FORGET_RATES_ATTRIBUTE]: withForgetRate(manifest, key, rate) } : {};
}
