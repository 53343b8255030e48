import * as tf from '@tensorflow/tfjs-core';
import type { MoEModel } from './moe-model';

/** A batch as libs/data produces it: NHWC float pixels (normalised) and integer labels. */
export interface ArrayBatch {
  x: Float32Array;
  y: Int32Array;
  size: number;
  /** Positions of the batch's samples in their dataset, where the producer knows them. */
  positions?: Int32Array;
  /** Original dataset indices (what sample ids and workers' Forward calls name). */
  indices?: Int32Array;
}

export interface Evaluation {
  count: number;
  correct: number;
  /** Fraction in [0, 1]. */
  accuracy: number;
  /** Per true class: samples, correct predictions, accuracy (NaN where a class has no samples). */
  perClass: { total: number; correct: number; accuracy: number }[];
  /** [class][expert]: how often the expert was among a sample's top k, by true class. */
  routing: number[][];
  /** [true class][predicted class] counts. */
  confusion: number[][];
}

/** Converts an array batch to an image tensor of the model's input shape. */
export function batchToTensor(model: MoEModel, batch: ArrayBatch): tf.Tensor4D {
  const [h, w, c] = model.config.inputShape;
  return tf.tensor4d(batch.x.subarray(0, batch.size * h * w * c), [batch.size, h, w, c]);
}

/** One inference pass: accuracy, per-class accuracy and the class × expert routing table. */
export function evaluate(
  model: MoEModel,
  batches: Iterable<ArrayBatch>,
  options: { suppressClasses?: readonly number[] } = {},
): Evaluation {
  const classes = model.config.numClasses;
  const experts = model.config.experts;
  const routing = Array.from({ length: classes }, () => new Array<number>(experts).fill(0));
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (const batch of batches) {
    const predicted = tf.tidy(() => {
      const { logits, routing: r } = model.forward(batchToTensor(model, batch), options);
      for (let b = 0; b < batch.size; b++) {
        const label = batch.y[b]!;
        for (let j = 0; j < r.topK; j++) routing[label]![r.chosen[b * r.topK + j]!]!++;
      }
      return tf.argMax(logits, 1).dataSync() as Int32Array;
    });
    for (let b = 0; b < batch.size; b++) confusion[batch.y[b]!]![predicted[b]!]!++;
  }
  return evaluationFrom(confusion, routing);
}

/** Accuracy and per-class accuracy from a [true][predicted] confusion matrix. */
export function evaluationFrom(confusion: number[][], routing: number[][]): Evaluation {
  const perClass = confusion.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    const correct = row[c]!;
    return { total, correct, accuracy: total === 0 ? Number.NaN : correct / total };
  });
  const count = perClass.reduce((n, p) => n + p.total, 0);
  const correct = perClass.reduce((n, p) => n + p.correct, 0);
  return {
    count,
    correct,
    accuracy: count === 0 ? Number.NaN : correct / count,
    perClass,
    routing,
    confusion,
  };
}
