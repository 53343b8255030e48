import { CIFAR10_STATS, formatSampleId, makeSyntheticDataset } from '@lethe/data';
import { initEngine } from '@lethe/engine';
import type { MoEConfig } from '@lethe/model';
import type { SisaRecipe, SisaTrainOptions } from '../src';

export const useWasm = (): Promise<unknown> => initEngine({ engine: 'wasm', log: () => undefined });

/** 36 generated images of 3 classes: small enough to train shard models in a second. */
export const train = makeSyntheticDataset({ perClass: 12, split: 'train', seed: 4, classes: 3 });

export const config: MoEConfig = {
  preset: 'tiny',
  experts: 2,
  topK: 1,
  numClasses: 3,
  inputShape: [32, 32, 3],
  routerNoise: 0,
  balanceWeight: 0.1,
  seed: 3,
};

/** A sisa recipe for `train`; override what a test varies. */
export function sisaOptions(
  overrides: Partial<SisaTrainOptions> = {},
): SisaTrainOptions & SisaRecipe {
  return {
    dataset: 'synthetic',
    config,
    classes: train.classes,
    normalise: CIFAR10_STATS,
    slices: 3,
    assignment: 'uniform',
    epochsPerSlice: 1,
    routerEpochs: 1,
    routerFraction: 0.5,
    batchSize: 8,
    learningRate: 0.01,
    weightDecay: 0,
    ...overrides,
  };
}

export const sampleIdOf = (i: number): string => formatSampleId(train.name, 'train', i);
