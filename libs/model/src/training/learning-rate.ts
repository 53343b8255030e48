export type ScheduleName = 'constant' | 'cosine' | 'one-cycle';

export interface ScheduleConfig {
  name: ScheduleName;
  /** Peak learning rate. */
  learningRate: number;
  totalSteps: number;
  /** Linear warm-up steps for `cosine`; `one-cycle` warms up over its first 30%. */
  warmupSteps?: number;
}

/** Learning rate at `step` (0-based). Short CPU runs converge much faster with warm-up + decay. */
export function learningRateAt(config: ScheduleConfig, step: number): number {
  const { learningRate: peak, totalSteps } = config;
  const t = Math.min(step, totalSteps);
  switch (config.name) {
    case 'constant':
      return peak;
    case 'cosine': {
      const warmup = config.warmupSteps ?? 0;
      if (t < warmup) return (peak * (t + 1)) / warmup;
      const progress = (t - warmup) / Math.max(1, totalSteps - warmup);
      return 0.5 * peak * (1 + Math.cos(Math.PI * progress));
    }
    case 'one-cycle': {
      const rise = Math.max(1, Math.floor(totalSteps * 0.3));
      if (t < rise) return peak * (0.1 + (0.9 * t) / rise);
      const progress = (t - rise) / Math.max(1, totalSteps - rise);
      return peak * (0.001 + 0.999 * 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
  }
}
