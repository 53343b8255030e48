import type { JobProgress } from '@lethe/proto';

/** What a running job may do besides its work: report, log, and notice cancellation. */
export interface JobContext {
  jobId: string;
  /** Increasing job number; step ids of its experts start above seq * STEP_IDS_PER_JOB. */
  seq: number;
  signal: AbortSignal;
  progress(progress: JobProgress): void;
  log(level: 'info' | 'warn' | 'error', text: string): void;
}

/** Room for a job's steps in the step-id space, so ids increase per expert across jobs. */
export const STEP_IDS_PER_JOB = 1_000_000_000;

/** A job's outcome: the manifest revision it published. */
export interface JobOutcome {
  manifestRevision: number;
}
