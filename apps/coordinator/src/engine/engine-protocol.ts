import type { EvaluateResponse, ImageTensor, JobProgress, PredictResponse } from '@lethe/proto';
import type { MoEConfig } from '@lethe/model';
import type { TlsMaterial } from '@lethe/rpc';
import type { ForgetPreview, SampleForgetPreview } from '@lethe/unlearning';
import type { ForgetJobRequest } from '../contract/forget-request';
import type { StepTiming } from '../contract/job-context';
import type { EvaluateSpec } from '../contract/request-validation';
import type { TrainingRequest } from '../contract/training-request';
import type { ExpertCheckpoint } from '../workers/expert-session';

/**
 * The messages between the coordinator's main thread (gRPC, registry, job queue) and its engine
 * threads (TensorFlow.js): one thread runs jobs, one serves Predict and Evaluate. Everything
 * here crosses threads by structured clone.
 */

export type EngineRole = 'jobs' | 'serving';

/** What an engine thread starts with (worker_threads workerData). */
export interface EngineThreadData {
  role: EngineRole;
  /** Object store URL; the thread opens its own store (credentials come from the environment). */
  store: string;
  logLevel: string;
  /** How the thread calls workers: the coordinator's client certificate, or plaintext. */
  tls: TlsMaterial | null;
  workerDeadlineMs: number;
  checkpointEverySteps: number;
}

/** A job for the jobs thread: its id and sequence number, and the normalised request(s). */
export type JobOrder =
  | {
      kind: 'training';
      jobId: string;
      seq: number;
      request: TrainingRequest;
      /** Where its checkpoint lives, and whether it ran before a restart (it resumes). */
      requestId?: string;
      restarted?: boolean;
    }
  | { kind: 'forget'; jobId: string; seq: number; request: ForgetJobRequest }
  /** Sisa forget requests that share one replay; the first is the job that runs it. */
  | { kind: 'sisa-forget'; jobId: string; seq: number; requests: ForgetJobRequest[] };

/** How one request of a job ended: the revision it published, or why it failed. */
export type JobEnd = { manifestRevision: number } | { error: string };

/** Serving: images to classify, by the call they answer (for cancellation). */
export interface PredictOrder {
  callId: number;
  images: ImageTensor[];
}

/** Serving: a dataset to evaluate on, already validated; no dataset means the model's own. */
export interface EvaluateOrder extends EvaluateSpec {
  callId: number;
}

/** Jobs thread: a dry run of an admitted class forget request, by the call it answers. */
export interface PreviewOrder {
  callId: number;
  request: ForgetJobRequest;
}

/** A worker as the main thread names it to an engine thread. */
export interface WorkerAddress {
  id: string;
  address: string;
}

/** What the main thread answers an engine thread: the registry, and a job's reports. */
export interface HostApi {
  ready(arg: { engine: string }): void;
  setExpertCount(arg: number): Promise<void>;
  locate(arg: { expert: number; waitMs: number }): Promise<WorkerAddress | null>;
  isLost(arg: string): Promise<boolean>;
  markLost(arg: { workerId: string; reason: string }): Promise<void>;
  liveCount(arg: null): Promise<number>;
  jobProgress(arg: { jobId: string; progress: JobProgress }): void;
  jobLog(arg: { jobId: string; level: 'info' | 'warn' | 'error'; text: string }): void;
  jobRetraining(arg: { jobId: string; experts: number[] }): void;
  saveCheckpoints(arg: { jobId: string; checkpoints: Record<string, ExpertCheckpoint> }): void;
  recordStep(arg: StepTiming): void;
  recordWorkerRpc(arg: { method: string; seconds: number }): void;
}

/** What an engine thread answers the main thread. */
export interface EngineApi {
  runJob(arg: JobOrder): Promise<JobEnd[]>;
  abortJob(arg: string): void;
  predict(arg: PredictOrder): Promise<PredictResponse>;
  evaluate(arg: EvaluateOrder): Promise<EvaluateResponse>;
  /** Jobs thread: a forget request's plan and cost, beside whatever job runs there. */
  preview(arg: PreviewOrder): Promise<ForgetPreview | SampleForgetPreview>;
  /** Serving thread: the trainable parameters of one expert of a model so configured. */
  expertParameters(arg: MoEConfig): Promise<number>;
  /** A client cancelled a call (serving, preview), or its deadline passed: stop its work. */
  cancel(arg: number): void;
}
