import * as tf from '@tensorflow/tfjs-core';
import type { ParameterCollection } from './parameters';

export interface BatchStatistics {
  readonly mean: tf.Variable;
  readonly variance: tf.Variable;
  readonly batchMean: tf.Tensor;
  readonly batchVariance: tf.Tensor;
}

/**
 * Batch normalisation over N, H, W of an NHWC tensor.
 *
 * Moving statistics are not updated inside `apply`: `apply` runs under a gradient tape, and
 * assigning variables there would tie the update to the tape's lifetime. Instead the training
 * forward pass reports the batch moments through `collect`, and the caller folds them in after
 * the optimiser step (see `updateMovingStatistics`).
 */
export class BatchNorm {
  private readonly gamma: tf.Variable;
  private readonly beta: tf.Variable;
  private readonly movingMean: tf.Variable;
  private readonly movingVariance: tf.Variable;

  constructor(
    params: ParameterCollection,
    name: string,
    channels: number,
    private readonly epsilon = 1e-3,
  ) {
    this.gamma = params.add(`${name}/gamma`, tf.ones([channels]));
    this.beta = params.add(`${name}/beta`, tf.zeros([channels]));
    this.movingMean = params.add(`${name}/moving_mean`, tf.zeros([channels]), false);
    this.movingVariance = params.add(`${name}/moving_variance`, tf.ones([channels]), false);
  }

  apply(x: tf.Tensor4D, training: boolean, collect?: BatchStatistics[]): tf.Tensor4D {
    if (!training) {
      return tf.batchNorm4d(
        x,
        this.movingMean as tf.Tensor1D,
        this.movingVariance as tf.Tensor1D,
        this.beta as tf.Tensor1D,
        this.gamma as tf.Tensor1D,
        this.epsilon,
      );
    }
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    if (collect) {
      collect.push({
        mean: this.movingMean,
        variance: this.movingVariance,
        batchMean: tf.keep(mean),
        batchVariance: tf.keep(variance),
      });
    }
    return tf.batchNorm4d(
      x,
      mean as tf.Tensor1D,
      variance as tf.Tensor1D,
      this.beta as tf.Tensor1D,
      this.gamma as tf.Tensor1D,
      this.epsilon,
    );
  }
}

/** Folds collected batch moments into the moving averages, then frees them. */
export function updateMovingStatistics(stats: BatchStatistics[], momentum = 0.9): void {
  tf.tidy(() => {
    for (const s of stats) {
      s.mean.assign(tf.add(tf.mul(s.mean, momentum), tf.mul(s.batchMean, 1 - momentum)));
      s.variance.assign(
        tf.add(tf.mul(s.variance, momentum), tf.mul(s.batchVariance, 1 - momentum)),
      );
    }
  });
  for (const s of stats) {
    s.batchMean.dispose();
    s.batchVariance.dispose();
  }
  stats.length = 0;
}
