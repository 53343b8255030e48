import * as tf from '@tensorflow/tfjs-core';
import type { ParameterCollection } from './parameters';

/** Fully connected layer with Glorot-normal initialisation (it feeds logits, not a ReLU). */
export class Dense {
  private readonly kernel: tf.Variable;
  private readonly bias: tf.Variable;

  constructor(params: ParameterCollection, name: string, inputs: number, units: number) {
    this.kernel = params.add(
      `${name}/kernel`,
      tf.randomNormal(
        [inputs, units],
        0,
        Math.sqrt(2 / (inputs + units)),
        'float32',
        params.nextSeed(),
      ),
    );
    this.bias = params.add(`${name}/bias`, tf.zeros([units]));
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(x, this.kernel as tf.Tensor2D), this.bias);
  }
}
