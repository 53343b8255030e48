import type { ScheduleName } from '@lethe/model';
import { z } from 'zod';

const SCHEDULES = ['constant', 'cosine', 'one-cycle'] as const satisfies readonly ScheduleName[];

/**
 * A StartTraining request with every default filled in, as stored with its job (the `request`
 * column of a training job). The API's bounds are checked once, at admission
 * (request-validation.ts); this schema checks what a stored row must be to run again.
 */
export const TrainingRequestSchema = z.object({
  mode: z.enum(['joint', 'sisa']),
  /** Sisa only: the layout and the router phase. */
  sisa: z
    .object({ slices: z.number().int().min(1), routerEpochs: z.number().int().min(0) })
    .optional(),
  dataset: z.string().min(1),
  limit: z.number().int().min(0),
  preset: z.string().min(1),
  experts: z.number().int().min(1),
  topK: z.number().int().min(1),
  epochs: z.number().int().min(1),
  batchSize: z.number().int().min(1),
  learningRate: z.number().positive(),
  weightDecay: z.number().min(0),
  schedule: z.enum(SCHEDULES),
  seed: z.number().int(),
  balanceWeight: z.number().min(0),
  routerNoise: z.number().min(0),
  /**
   * β of the class–expert specialization loss (MoEConfig.specializeWeight). Rows stored before
   * it existed trained without it: 0.
   */
  specializeWeight: z.number().min(0).default(0),
  augment: z.boolean(),
  /**
   * The subject table's path on the coordinator (StartTrainingRequest.subjects), and the SHA-256
   * of the bytes admission checked: the job trains with that table or fails. Absent: none (and
   * in rows stored before tables could be given).
   */
  subjects: z.string().min(1).optional(),
  subjectsSha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

export type TrainingRequest = z.infer<typeof TrainingRequestSchema>;
