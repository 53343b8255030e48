import type { JobProgress } from '@lethe/proto';

export type JobKindName = 'training' | 'forget';
export type JobStateName = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const TERMINAL_STATES: ReadonlySet<JobStateName> = new Set([
  'succeeded',
  'failed',
  'cancelled',
]);

/** A job as the coordinator persists it. `request` is the normalised request, as JSON. */
export interface JobRecord {
  id: string;
  seq: number;
  kind: JobKindName;
  state: JobStateName;
  /** Idempotency key; '' when the client gave none. */
  requestId: string;
  /** What identifies the request for idempotency: same id and fingerprint = same request. */
  fingerprint: string;
  request: unknown;
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  progress?: JobProgress;
  error?: string;
  manifestRevision: number;
  /** Training jobs: the experts' latest checkpoints, so a worker's loss costs little work. */
  checkpoints?: Record<string, unknown>;
}
