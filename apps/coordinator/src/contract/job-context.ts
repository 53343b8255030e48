import type { StepProgress } from '@lethe/model';
import type { JobProgress } from '@lethe/proto';

/** What a running job may do besides its work: report, log, and notice cancellation. */
export interface JobContext {
  jobId: string;
  /** The request id the job was submitted with ('' when none). */
  requestId?: string;
  /** The job was running when the coordinator stopped, and runs again now. */
  restarted?: boolean;
  /** Increasing job number; step ids of its experts start above seq * STEP_IDS_PER_JOB. */
  seq: number;
  signal: AbortSignal;
  progress(progress: JobProgress): void;
  log(level: 'info' | 'warn' | 'error', text: string): void;
  /** The current model's experts the job is retraining (ListExperts shows them TRAINING). */
  retraining?(experts: readonly number[]): void;
}

/** One expert-parallel step as a job reports it (to metrics, across the engine bridge). */
export interface StepTiming {
  stepSeconds: number;
  rpcSeconds: number;
  /** Images in the step's batch. */
  images: number;
}

/** Room for a job's steps in the step-id space, so ids increase per expert across jobs. */
export const STEP_IDS_PER_JOB = 1_000_000_000;

/** A job's outcome: the manifest revision it published. */
export interface JobOutcome {
  manifestRevision: number;
}

/** A job's progress report from libs/model's step progress (epochs counted from 1, as the API). */
export function stepProgress(
  phase: string,
  p: StepProgress,
  epochs: number,
  extra: Partial<JobProgress> = {},
): JobProgress {
  return {
    phase,
    epoch: p.epoch + 1,
    epochs,
    step: p.step,
    stepsPerEpoch: p.stepsPerEpoch,
    globalStep: p.globalStep,
    totalSteps: p.totalSteps,
    loss: p.loss,
    accuracy: p.accuracy,
    imagesPerSecond: p.imagesPerSecond,
    learningRate: p.learningRate,
    ...extra,
  };
}
