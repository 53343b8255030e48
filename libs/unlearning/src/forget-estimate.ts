import { recordedTrainingRate, type TrainingRecord } from '@lethe/model';
import type { MeasuredOutputs } from './output-memo';

/** The work a forget request implies, and seconds at the rate its model trained at. */
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
  seconds: { retraining: number; measurement: number; total: number } | undefined;
}

/** What a forget retrains, as its job plans it. */
export interface ForgetWork {
  trainingSamples: number;
  epochs: number;
  expertsRetrained: number;
  /** Whether each retraining sample also runs through the original model (a distillation teacher). */
  teacherPass: boolean;
}

/**
 * Seconds at the rate the stored model trained at: a retraining step costs about a training
 * step (router and experts forward and backward), an inference pass (the teacher's, a
 * measurement's) about a third, and the "before" skips what the output memo holds.
 */
export function estimateForget(
  work: ForgetWork,
  measured: MeasuredOutputs,
  training: TrainingRecord | undefined,
): ForgetEstimate {
  const { trainingSamples, epochs, expertsRetrained, teacherPass } = work;
  const rate = recordedTrainingRate(training);
  const seconds = (() => {
    if (!rate) return undefined;
    const retraining =
      (trainingSamples * epochs) / rate + (teacherPass ? trainingSamples / (3 * rate) : 0);
    const { measuredSamples, measuredBeforeReused } = measured;
    const measurement =
      (2 * measuredSamples - Math.min(measuredSamples, measuredBeforeReused)) / (3 * rate);
    return { retraining, measurement, total: retraining + measurement };
  })();
  return {
    trainingSamples,
    epochs,
    expertsRetrained,
    expertSampleWork: trainingSamples * expertsRetrained * epochs,
    measuredSamples: measured.measuredSamples,
    measuredBeforeReused: measured.measuredBeforeReused,
    trainingRate: rate,
    seconds,
  };
}
