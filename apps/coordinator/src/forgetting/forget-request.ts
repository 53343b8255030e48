import type { ForgetMethod, UnlearningLoss } from '@lethe/unlearning';
import type { AuditActor } from '../audit/audit-log';

/** A SubmitForget request with defaults filled in and the class resolved, as stored with its job. */
export interface ForgetJobRequest {
  requestId: string;
  classIndex: number;
  className: string;
  method: ForgetMethod;
  /** Set only where the client set it (targeted), as libs/unlearning expects. */
  loss?: UnlearningLoss;
  select?: string;
  epochs: number;
  learningRate: number;
  lambda: number;
  maskOutput: boolean;
  batchSize: number;
  seed: number;
  /** Who submitted it, for the audit entry of its end; not part of its fingerprint. */
  submittedBy?: AuditActor;
}
