import type { ScheduleName } from '@lethe/model';

/** A StartTraining request with every default filled in, as stored with its job. */
export interface TrainingRequest {
  mode: 'joint' | 'sisa';
  /** Sisa only: the layout and the router phase. */
  sisa?: { slices: number; routerEpochs: number };
  dataset: string;
  limit: number;
  preset: string;
  experts: number;
  topK: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  schedule: ScheduleName;
  seed: number;
  balanceWeight: number;
  routerNoise: number;
  /** β of the class–expert specialization loss (MoEConfig.specializeWeight). */
  specializeWeight: number;
  augment: boolean;
}
