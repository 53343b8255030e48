import type { JobProgress } from '@lethe/proto';
import type { ForgetJobRequest } from './forget-request';
import type { TrainingRequest } from './training-request';

export type JobKindName = 'training' | 'forget';
export type JobStateName = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const TERMINAL_STATES: ReadonlySet<JobStateName> = new Set([
  'succeeded',
  'failed',
  'cancelled',
]);

/** A job's kind and its normalised request, as stored (JSON) and parsed back by its schema. */
export type JobRequest =
  { kind: 'training'; request: TrainingRequest } | { kind: 'forget'; request: ForgetJobRequest };

/** What a job is besides its request. */
interface JobFields {
  id: string;
  seq: number;
  state: JobStateName;
  /** Idempotency key; '' when the client gave none. */
  requestId: string;
  /** What identifies the request for idempotency: same id and fingerprint = same request. */
  fingerprint: string;
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  progress?: JobProgress;
  error?: string;
  manifestRevision: number;
  /** Training jobs: the experts' latest checkpoints, so a worker's loss costs little work. */
  checkpoints?: Record<string, unknown>;
}

export type TrainingJobRecord = JobFields & { kind: 'training'; request: TrainingRequest };
export type ForgetJobRecord = JobFields & { kind: 'forget'; request: ForgetJobRequest };
/** A job as the coordinator persists it; `kind` tells which request it holds. */
export type JobRecord = TrainingJobRecord | ForgetJobRecord;

/** What admission inserts: a request of a kind, its idempotency key and fingerprint. */
export type NewJob = JobRequest & { requestId: string; fingerprint: string };
