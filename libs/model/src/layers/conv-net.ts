import * as tf from '@tensorflow/tfjs-core';
import type { ConvNetSpec } from '../presets';
import { BatchNorm, type BatchStatistics, type LayerMode } from './batch-norm';
import { Conv2D } from './conv2d';
import { Dense } from './dense';
import { ParameterCollection } from './parameters';

interface ConvBlock {
  conv: Conv2D;
  norm: BatchNorm;
  pool: boolean;
}

/** The CNN used for both the router (E outputs) and each expert (class logits). */
export class ConvNet {
  readonly params: ParameterCollection;
  private readonly blocks: ConvBlock[] = [];
  private readonly head: Dense;
  readonly featureSize: number;

  constructor(
    label: string,
    readonly spec: ConvNetSpec,
    inputShape: readonly [number, number, number],
    readonly outputs: number,
    seed: number,
  ) {
    this.params = new ParameterCollection(label, seed);
    let [height, width, channels] = inputShape;
    spec.stages.forEach((stage, s) => {
      for (let c = 0; c < stage.convs; c++) {
        const name = `stage${s}/conv${c}`;
        const conv = new Conv2D(this.params, name, {
          inChannels: channels,
          filters: stage.filters,
          kernelSize: 3,
          // Batch norm follows, so a conv bias would only be cancelled by its mean.
          useBias: false,
        });
        const norm = new BatchNorm(this.params, `${name}/bn`, stage.filters);
        const pool = stage.pool && c === stage.convs - 1;
        this.blocks.push({ conv, norm, pool });
        channels = stage.filters;
      }
      if (stage.pool) {
        height = Math.floor(height / 2);
        width = Math.floor(width / 2);
      }
    });
    this.featureSize = spec.head === 'gap' ? channels : height * width * channels;
    this.head = new Dense(this.params, 'head', this.featureSize, outputs);
  }

  /** Penultimate features [N, featureSize]: what the head (and a feature probe) sees. */
  features(x: tf.Tensor4D, training: LayerMode, collect?: BatchStatistics[]): tf.Tensor2D {
    let h = x;
    for (const block of this.blocks) {
      h = block.norm.apply(block.conv.apply(h), training, collect);
      // max-pool and ReLU commute (ReLU is monotonic); pooling first runs the ReLU and its
      // gradient on a quarter of the values.
      if (block.pool) h = tf.maxPool(h, 2, 2, 'valid');
      h = tf.relu(h);
    }
    return this.spec.head === 'gap'
      ? (tf.mean(h, [1, 2]) as tf.Tensor2D)
      : tf.reshape(h, [h.shape[0], this.featureSize]);
  }

  apply(x: tf.Tensor4D, training: LayerMode, collect?: BatchStatistics[]): tf.Tensor2D {
    return this.head.apply(this.features(x, training, collect));
  }

  dispose(): void {
    this.params.dispose();
  }
}
