import type {
  ForgetMethod,
  MeasureMode,
  SampleForgetMethod,
  UnlearningLoss,
} from '@lethe/unlearning';
import type { AuditActor } from '@lethe/ledger';

/**
 * A SubmitForget request with the class resolved, as stored with its job. Recipe fields the
 * client left unset are absent: libs/unlearning fills them from DEFAULT_FORGET_RECIPE when the
 * job runs, and its receipt records the values used.
 */
export interface ForgetJobRequest {
  requestId: string;
  /** Class target; -1 and '' for a samples target. */
  classIndex: number;
  className: string;
  /**
   * A class method; `sisa-replay` (exact, a sisa model's samples, batched by the forget
   * window); `samples` (approximate, a joint model's samples or subjects, a job of its own).
   */
  method: ForgetMethod | 'sisa-replay' | 'samples';
  /** `samples` only, where the client named one: DEFAULT_SAMPLE_FORGET_RECIPE's otherwise. */
  sampleMethod?: SampleForgetMethod;
  /** Samples target: every sample id, subjects expanded, sorted. */
  sampleIds?: string[];
  /** The data subjects the sample ids were expanded from, for the receipt and the ledger. */
  subjects?: string[];
  /** Set only where the client set it (targeted), as libs/unlearning expects. */
  loss?: UnlearningLoss;
  select?: string;
  /** Targeted only, where the client set it: share of retained samples retrained on. */
  retainFraction?: number;
  /** Targeted only, where the client set it: weight of the router anchor. */
  anchor?: number;
  measure?: MeasureMode;
  epochs?: number;
  learningRate?: number;
  lambda?: number;
  maskOutput: boolean;
  batchSize?: number;
  seed: number;
  /** Who submitted it, for the audit entry of its end; not part of its fingerprint. */
  submittedBy?: AuditActor;
}
