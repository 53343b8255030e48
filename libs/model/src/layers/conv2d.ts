import * as tf from '@tensorflow/tfjs-core';
import type { ParameterCollection } from './parameters';

export interface Conv2DConfig {
  inChannels: number;
  filters: number;
  kernelSize: number;
  strides?: number;
  useBias?: boolean;
}

/** 'same'-padded NHWC convolution with He-normal initialisation (it feeds a ReLU). */
export class Conv2D {
  private readonly kernel: tf.Variable;
  private readonly bias: tf.Variable | undefined;
  private readonly strides: number;

  constructor(params: ParameterCollection, name: string, config: Conv2DConfig) {
    const { inChannels, filters, kernelSize } = config;
    this.strides = config.strides ?? 1;
    const fanIn = kernelSize * kernelSize * inChannels;
    this.kernel = params.add(
      `${name}/kernel`,
      tf.randomNormal(
        [kernelSize, kernelSize, inChannels, filters],
        0,
        Math.sqrt(2 / fanIn),
        'float32',
        params.nextSeed(),
      ),
    );
    this.bias =
      config.useBias === false ? undefined : params.add(`${name}/bias`, tf.zeros([filters]));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    const y = tf.conv2d(x, this.kernel as tf.Tensor4D, this.strides, 'same');
    return this.bias ? tf.add(y, this.bias) : y;
  }
}
