import type { ForgetMethod, UnlearningLoss } from '@lethe/unlearning';
import type { AuditActor } from '../audit/audit-log';

/** A SubmitForget request with defaults filled in and the class resolved, as stored with its job. */
export interface ForgetJobRequest {
  requestId: string;
  /** Class target; -1 and '' for a samples target. */
  classIndex: number;
  className: string;
  method: ForgetMethod | 'sisa-replay';
  /** Samples target (exact forgetting on a sisa model). */
  sampleIds?: string[];
  /** Set only where the client set it (targeted), as libs/unlearning expects. */
  loss?: UnlearningLoss;
  select?: string;
  /** Targeted only, where the client set it: share of retained samples retrained on. */
  retainFraction?: number;
  epochs: number;
  learningRate: number;
  lambda: number;
  maskOutput: boolean;
  batchSize: number;
  seed: number;
  /** Who submitted it, for the audit entry of its end; not part of its fingerprint. */
  submittedBy?: AuditActor;
}
