import { DEFAULT_MOE_CONFIG } from '@lethe/model';

/**
 * Experts per image a model gets unless told: two for a joint model (the model's default), all
 * of them for a sisa model. Its shard models are generalists trained on disjoint random shards,
 * so mixing every one (as SISA's vote does) beats any two: +3.1 points of CIFAR-10 test accuracy
 * at 10,000 images and +3.9 at 50,000, E=8 (BENCHMARKS.md, unlearn-sisa). The router still
 * weighs them, and replay costs the same: the router trains on stored logits tables.
 */
export function defaultTopK(mode: 'joint' | 'sisa', experts: number): number {
  return mode === 'sisa' ? experts : DEFAULT_MOE_CONFIG.topK;
}

/**
 * What a sisa training gets for what it leaves unset, the CLI and StartTraining alike: 4 slices
 * per shard; 4 epochs over each slice prefix (2 left the shard models undertrained: 66.1% against
 * 69.9% at 50,000 CIFAR-10 images, E=8, BENCHMARKS.md unlearn-sisa-50k); the router trained 1 epoch
 * on every sample (3 epochs scored +0.07 points, and every replay retrains the router).
 */
export const DEFAULT_SISA_OPTIONS = {
  slices: 4,
  epochsPerSlice: 4,
  routerEpochs: 1,
  routerFraction: 1,
} as const;

/** Training epochs a model gets unless told: 10 for a joint model, 4 per slice prefix for sisa. */
export function defaultEpochs(mode: 'joint' | 'sisa'): number {
  return mode === 'sisa' ? DEFAULT_SISA_OPTIONS.epochsPerSlice : 10;
}
