import { type Dataset, subset } from './dataset';
import { parseDatasetSpec } from './open';
import { createRng, deriveSeed } from './rng';
import { CIFAR10_STATS, CIFAR100_STATS, type ChannelStats, channelStats } from './stats';

/**
 * The seeded subset a model trained with `limit` saw. Forgetting must see exactly the training
 * set the model saw (the oracle retrains on it), so whoever forgets reapplies it from the stored
 * training record. Sample ids are kept: `subset` preserves original indices.
 */
export function limitTrainingSet(train: Dataset, limit: number | undefined, seed: number): Dataset {
  if (!limit || limit >= train.size) return train;
  const all = Int32Array.from({ length: train.size }, (_, i) => i);
  const picked = createRng(deriveSeed(seed, 'train-subset')).shuffle(all).slice(0, limit).sort();
  return subset(train, picked);
}

/**
 * The per-channel statistics a model of this data normalises with: the published ones for
 * CIFAR, otherwise measured on the training split.
 */
export function defaultNormalisation(spec: string, train: Dataset): ChannelStats {
  const scheme = parseDatasetSpec(spec).scheme;
  if (scheme === 'cifar10') return CIFAR10_STATS;
  if (scheme.startsWith('cifar100')) return CIFAR100_STATS;
  return channelStats(train);
}
