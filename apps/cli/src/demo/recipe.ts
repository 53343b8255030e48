import { type Dataset, makeSyntheticDataset } from '@lethe/data';
import { DEFAULT_SPECIALIZE_WEIGHT } from '@lethe/model';

/** What `lethe demo` trains on and how; the local and the distributed demo share it. */
export interface DemoOptions {
  /** Training epochs. */
  epochs: number;
  /** Training images per class (the test split has TEST_PER_CLASS). */
  perClass: number;
}

export const TEST_PER_CLASS = 100;
export const DATA_SEED = 1;

/** The shapes dataset of the demo: 6 classes, `perClass` training and 100 test images each. */
export function demoDatasets(options: DemoOptions): { train: Dataset; test: Dataset } {
  return {
    train: makeSyntheticDataset({ perClass: options.perClass, split: 'train', seed: DATA_SEED }),
    test: makeSyntheticDataset({ perClass: TEST_PER_CLASS, split: 'test', seed: DATA_SEED }),
  };
}

/** The training recipe, the same whether it runs in-process or on the cluster. */
export const TRAINING = {
  preset: 'tiny',
  experts: 4,
  topK: 2,
  batchSize: 64,
  learningRate: 0.01,
  weightDecay: 0.0005,
  schedule: 'one-cycle',
  seed: 1,
  augment: false,
  // The tiny router collapsed onto two experts at 0.1 on these shapes; at 0.5 routing
  // follows the classes, which is what makes targeted forgetting visible.
  balanceWeight: 0.5,
  routerNoise: 1,
  specializeWeight: DEFAULT_SPECIALIZE_WEIGHT,
} as const;

/** The class the demo forgets (label 1 of the shapes) and how. */
export const FORGET = {
  className: 'disc',
  requestId: 'demo-forget',
  epochs: 3,
  learningRate: 0.003,
  batchSize: 64,
} as const;
