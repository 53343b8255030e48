import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { complementCrossEntropy, crossEntropy, perSampleComplementCrossEntropy } from '../src';
import { useWasm } from './helpers';

beforeAll(useWasm);

describe('losses', () => {
  const logits = (): tf.Tensor2D => tf.tensor2d([[Math.log(0.7), Math.log(0.2), Math.log(0.1)]]);
  const label = (c: number): tf.Tensor1D => tf.tensor1d([c], 'int32');

  it('cross-entropy is −log p_y', () => {
    expect(crossEntropy(logits(), label(0)).dataSync()[0]).toBeCloseTo(-Math.log(0.7), 5);
    expect(crossEntropy(logits(), label(2)).dataSync()[0]).toBeCloseTo(-Math.log(0.1), 5);
  });

  it('complement cross-entropy is −log(1 − p_y), stable when p_y → 1', () => {
    expect(complementCrossEntropy(logits(), label(0)).dataSync()[0]).toBeCloseTo(-Math.log(0.3), 5);
    expect(complementCrossEntropy(logits(), label(2)).dataSync()[0]).toBeCloseTo(-Math.log(0.9), 5);
    const confident = perSampleComplementCrossEntropy(tf.tensor2d([[30, 0, 0]]), label(0));
    expect(confident.dataSync()[0]).toBeCloseTo(30 - Math.log(2), 3);
  });
});
