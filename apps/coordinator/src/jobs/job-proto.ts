import { type Job, JobKind, JobState, TrainingMode } from '@lethe/proto';
import type { JobRecord, JobStateName } from '../contract/job-record';

const STATES: Record<JobStateName, JobState> = {
  queued: JobState.JOB_STATE_QUEUED,
  running: JobState.JOB_STATE_RUNNING,
  succeeded: JobState.JOB_STATE_SUCCEEDED,
  failed: JobState.JOB_STATE_FAILED,
  cancelled: JobState.JOB_STATE_CANCELLED,
};

export function toProtoJob(job: JobRecord): Job {
  return {
    jobId: job.id,
    kind: job.kind === 'training' ? JobKind.JOB_KIND_TRAINING : JobKind.JOB_KIND_FORGET,
    state: STATES[job.state],
    mode: isSisa(job) ? TrainingMode.TRAINING_MODE_SISA : TrainingMode.TRAINING_MODE_JOINT,
    requestId: job.requestId,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    progress: job.progress,
    error: job.error ?? '',
    manifestRevision: job.manifestRevision,
  };
}

/** Sisa training, or exact forgetting of samples by replay (a joint model's are `samples`). */
function isSisa(job: JobRecord): boolean {
  return job.kind === 'training'
    ? job.request.mode === 'sisa'
    : job.request.method === 'sisa-replay';
}
