import * as tf from '@tensorflow/tfjs-core';
import { batches, type ChannelStats, type Dataset } from '@lethe/data';
import { batchToTensor, type MoEModel } from '@lethe/model';
import type { FrozenExpertCache } from './frozen-expert-cache';

export interface ModelOutputs {
  /** Predicted class per sample (after any output mask). */
  pred: Int32Array;
  /** Softmax outputs, row-major [n, classes]: what membership inference reads. */
  probs: Float32Array;
  labels: Int32Array;
  /** [true class][expert]: how often each expert was among a sample's top k. */
  routing: number[][];
  /**
   * The same outputs before the serving-time mask: what the weights themselves say. The same
   * arrays as `pred` and `probs` when no class is suppressed.
   */
  raw: { pred: Int32Array; probs: Float32Array };
}

/** Predictions and true-label probabilities over a dataset (or some of its positions). */
export function modelOutputs(
  model: MoEModel,
  ds: Dataset,
  normalise: ChannelStats,
  options: {
    positions?: Int32Array;
    suppressClasses?: readonly number[];
    /** Frozen experts' logits for `ds`'s positions, filled on first use. */
    cache?: FrozenExpertCache;
  } = {},
): ModelOutputs {
  const n = options.positions?.length ?? ds.size;
  const classes = model.config.numClasses;
  const suppress = options.suppressClasses ?? [];
  const masked = suppress.length > 0;
  const pred = new Int32Array(n);
  const probs = new Float32Array(n * classes);
  const raw = masked
    ? { pred: new Int32Array(n), probs: new Float32Array(n * classes) }
    : { pred, probs };
  const mask = new Float32Array(classes);
  for (const c of suppress) mask[c] = -1e9;
  const labels = new Int32Array(n);
  const routing = Array.from({ length: classes }, () =>
    new Array<number>(model.config.experts).fill(0),
  );
  let offset = 0;
  const source = batches(ds, {
    batchSize: 256,
    shuffle: false,
    normalise,
    ...(options.positions ? { indices: options.positions } : {}),
  });
  for (const batch of source) {
    tf.tidy(() => {
      // One forward pass for both views; the mask is the one MoEModel.forward would add.
      const x = batchToTensor(model, batch);
      const cache = options.cache;
      const { logits: rawLogits, routing: r } = model.forward(
        x,
        cache && batch.positions ? { expertLogits: cache.provider(x, batch.positions) } : {},
      );
      for (let b = 0; b < batch.size; b++) {
        for (let j = 0; j < r.topK; j++) routing[batch.y[b]!]![r.chosen[b * r.topK + j]!]!++;
      }
      const logits = masked ? tf.add(rawLogits, tf.tensor1d(mask)) : rawLogits;
      pred.set(tf.argMax(logits, 1).dataSync() as Int32Array, offset);
      probs.set(tf.softmax(logits).dataSync() as Float32Array, offset * classes);
      if (masked) {
        raw.pred.set(tf.argMax(rawLogits, 1).dataSync() as Int32Array, offset);
        raw.probs.set(tf.softmax(rawLogits).dataSync() as Float32Array, offset * classes);
      }
    });
    labels.set(batch.y.subarray(0, batch.size), offset);
    offset += batch.size;
  }
  return { pred, probs, labels, routing, raw };
}

/**
 * The model's internal features (router features, every expert's logits: see
 * MoEModel.internalFeatures) for some positions, as a row-major matrix.
 */
export function internalFeatures(
  model: MoEModel,
  ds: Dataset,
  normalise: ChannelStats,
  positions: Int32Array,
): { data: Float32Array; rows: number; cols: number } {
  let data = new Float32Array(0);
  let cols = 0;
  let row = 0;
  for (const batch of batches(ds, {
    batchSize: 256,
    shuffle: false,
    normalise,
    indices: positions,
  })) {
    const features = tf.tidy(() => model.internalFeatures(batchToTensor(model, batch)));
    if (cols === 0) {
      cols = features.shape[1];
      data = new Float32Array(positions.length * cols);
    }
    data.set(features.dataSync() as Float32Array, row * cols);
    features.dispose();
    row += batch.size;
  }
  return { data, rows: positions.length, cols };
}
