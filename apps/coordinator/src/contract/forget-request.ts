import type { AuditActor } from '@lethe/ledger';
import {
  FORGET_METHODS,
  MEASURE_MODES,
  SAMPLE_FORGET_METHODS,
  UNLEARNING_LOSSES,
} from '@lethe/unlearning';
import { z } from 'zod';

// libs/ledger keeps its actor schema private; this one must accept exactly its AuditActor.
const AuditActorSchema = z.object({
  subject: z.string(),
  role: z.string(),
  via: z.enum(['token', 'certificate', 'none']),
}) satisfies z.ZodType<AuditActor, AuditActor>;

/**
 * A SubmitForget request with the class resolved, as stored with its job (the `request` column
 * of a forget job). Recipe fields the client left unset are absent: libs/unlearning fills them
 * from DEFAULT_FORGET_RECIPE when the job runs, and its receipt records the values used.
 */
export const ForgetJobRequestSchema = z.object({
  requestId: z.string(),
  /** Class target; -1 and '' for a samples target. */
  classIndex: z.number().int().min(-1),
  className: z.string(),
  /**
   * A class method; `sisa-replay` (exact, a sisa model's samples, batched by the forget
   * window); `samples` (approximate, a joint model's samples or subjects, a job of its own).
   */
  method: z.enum([...FORGET_METHODS, 'sisa-replay', 'samples']),
  /** `samples` only, where the client named one: DEFAULT_SAMPLE_FORGET_RECIPE's otherwise. */
  sampleMethod: z.enum(SAMPLE_FORGET_METHODS).optional(),
  /** Samples target: every sample id, subjects expanded, sorted. */
  sampleIds: z.array(z.string()).optional(),
  /** The data subjects the sample ids were expanded from, for the receipt and the ledger. */
  subjects: z.array(z.string()).optional(),
  /** Set only where the client set it (targeted), as libs/unlearning expects. */
  loss: z.enum(UNLEARNING_LOSSES).optional(),
  select: z.string().optional(),
  /** Targeted only, where the client set it: share of retained samples retrained on. */
  retainFraction: z.number().positive().optional(),
  /** Where the client set it: weight of the router anchor (targeted) or neggrad+'s anchor. */
  anchor: z.number().min(0).optional(),
  measure: z.enum(MEASURE_MODES).optional(),
  epochs: z.number().int().min(1).optional(),
  learningRate: z.number().positive().optional(),
  lambda: z.number().positive().optional(),
  maskOutput: z.boolean(),
  batchSize: z.number().int().min(1).optional(),
  seed: z.number().int(),
  /** Who submitted it, for the audit entry of its end; not part of its fingerprint. */
  submittedBy: AuditActorSchema.optional(),
});

export type ForgetJobRequest = z.infer<typeof ForgetJobRequestSchema>;
