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
/**
 * How a layer runs: `false` inference; `true` training (batch norm on batch statistics, which
 * are reported for the moving averages); `'frozen'` training with batch norm on its moving
 * statistics, which stay as they are — fine-tuning on a small or skewed subset.
 */
export type LayerMode = boolean | 'frozen';

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

  apply(x: tf.Tensor4D, training: LayerMode, collect?: BatchStatistics[]): tf.Tensor4D {
    if (training === 'frozen') {
      return frozenBatchNorm(
        x,
        this.movingMean,
        this.movingVariance,
        this.gamma,
        this.beta,
        this.epsilon,
      );
    }
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
    return trainingBatchNorm(x, this.gamma, this.beta, this.epsilon, (mean, variance) =>
      collect?.push({
        mean: this.movingMean,
        variance: this.movingVariance,
        batchMean: tf.keep(mean),
        batchVariance: tf.keep(variance),
      }),
    );
  }
}

/**
 * Training-mode batch norm over N, H, W with a hand-written gradient. tfjs's own FusedBatchNorm
 * gradient broadcasts with Tile, which alone took ~40% of a training step on the wasm backend;
 * the closed form below needs two channel reductions and a few element-wise ops:
 *   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ/σ · (dy − dβ/N − x̂·dγ/N).
 */
export function trainingBatchNorm(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  epsilon: number,
  onMoments: (mean: tf.Tensor, variance: tf.Tensor) => void,
): tf.Tensor4D {
  // customGrad passes inputs and the save function as one rest argument.
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, scale, offset, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const mean = tf.mean(input, [0, 1, 2]);
    const centered = tf.sub(input, mean);
    const variance = tf.mean(tf.square(centered), [0, 1, 2]);
    const invStd = tf.rsqrt(tf.add(variance, epsilon));
    const normalised = tf.mul(centered, invStd);
    onMoments(mean, variance);
    save([normalised, invStd, scale]);
    return {
      value: tf.add(tf.mul(normalised, scale), offset),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const dOut = dy as tf.Tensor;
        const [xhat, inv, g] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const n = dOut.size / dOut.shape[3]!;
        const dBeta = tf.sum(dOut, [0, 1, 2]);
        const dGamma = tf.sum(tf.mul(dOut, xhat), [0, 1, 2]);
        const dx = tf.mul(
          tf.mul(g, inv),
          tf.sub(tf.sub(dOut, tf.div(dBeta, n)), tf.mul(xhat, tf.div(dGamma, n))),
        );
        return [dx, dGamma, dBeta];
      },
    };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}

/**
 * Batch norm on fixed statistics, differentiable in x, γ and β. tfjs's BatchNorm gradient is
 * the slow Tile-based one (see trainingBatchNorm); with constant moments the closed form is
 *   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = dy·γ/σ.
 */
export function frozenBatchNorm(
  x: tf.Tensor4D,
  mean: tf.Tensor,
  variance: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  epsilon: number,
): tf.Tensor4D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, scale, offset, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    // Computed in here so that save() keeps it alive until the backward pass.
    const invStd = tf.rsqrt(tf.add(variance, epsilon));
    const normalised = tf.mul(tf.sub(input, mean), invStd);
    save([normalised, scale, invStd]);
    return {
      value: tf.add(tf.mul(normalised, scale), offset),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const dOut = dy as tf.Tensor;
        const [xhat, g, inv] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        return [
          tf.mul(dOut, tf.mul(g, inv)),
          tf.sum(tf.mul(dOut, xhat), [0, 1, 2]),
          tf.sum(dOut, [0, 1, 2]),
        ];
      },
    };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
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
