import * as tf from '@tensorflow/tfjs-core';
import { batches, type ChannelStats, type Dataset } from '@lethe/data';
import { batchToTensor, type Evaluation, evaluationFrom, type MoEModel } from '@lethe/model';
import type { FrozenExpertCache } from './frozen-expert-cache';
import { OutputMemo } from './output-memo';

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

/**
 * Predictions and probabilities over a dataset (or some of its positions). Only positions the
 * memo does not hold run through the model; the served view (with `suppressClasses` masked)
 * is derived from the raw softmax, as softmax(logits − ∞ on the masked classes) is the raw
 * softmax renormalised over the others.
 */
export function modelOutputs(
  model: MoEModel,
  ds: Dataset,
  normalise: ChannelStats,
  options: {
    positions?: Int32Array;
    suppressClasses?: readonly number[];
    /** Frozen experts' logits for `ds`'s positions, filled on first use. */
    cache?: FrozenExpertCache;
    /** Outputs of these weights on `ds` already known; filled with what is computed. */
    memo?: OutputMemo;
  } = {},
): ModelOutputs {
  const positions = options.positions ?? Int32Array.from({ length: ds.size }, (_, i) => i);
  const { numClasses: classes, topK } = model.config;
  const memo = options.memo ?? OutputMemo.for(ds, classes, topK);
  const slot = (p: number): number => ds.indices[p]!;
  if (
    positions.some((p) => slot(p) >= memo.size) ||
    memo.classes !== classes ||
    memo.topK !== topK
  ) {
    throw new Error('the output memo was made for another dataset or model shape');
  }
  const missing = memo.missing(ds, positions);
  if (missing.length > 0) {
    runModel(model, ds, normalise, missing, options.cache, (p, probs, chosen, row) =>
      memo.record(slot(p), probs, chosen, row),
    );
  }
  const n = positions.length;
  const suppress = new Set(options.suppressClasses ?? []);
  const masked = suppress.size > 0;
  const raw = { pred: new Int32Array(n), probs: new Float32Array(n * classes) };
  const served = masked ? { pred: new Int32Array(n), probs: new Float32Array(n * classes) } : raw;
  const labels = Int32Array.from(positions, (p) => ds.labels[p]!);
  const routing = Array.from({ length: classes }, () =>
    new Array<number>(model.config.experts).fill(0),
  );
  positions.forEach((p, i) => {
    const s = slot(p);
    const row = memo.probs.subarray(s * classes, (s + 1) * classes);
    raw.probs.set(row, i * classes);
    raw.pred[i] = argMax(row);
    for (let j = 0; j < topK; j++) routing[labels[i]!]![memo.chosen[s * topK + j]!]!++;
    if (!masked) return;
    let kept = 0;
    for (let c = 0; c < classes; c++) if (!suppress.has(c)) kept += row[c]!;
    for (let c = 0; c < classes; c++) {
      served.probs[i * classes + c] = suppress.has(c) || kept === 0 ? 0 : row[c]! / kept;
    }
    served.pred[i] = argMax(served.probs.subarray(i * classes, (i + 1) * classes));
  });
  return { ...served, labels, routing, raw };
}

/**
 * Runs the model in inference mode over `positions` of `ds`, in batches; hands each sample's
 * position, its batch's softmax and chosen experts, and its row in them to `record`.
 */
export function runModel(
  model: MoEModel,
  ds: Dataset,
  normalise: ChannelStats,
  positions: Int32Array,
  cache: FrozenExpertCache | undefined,
  record: (position: number, probs: Float32Array, chosen: Int32Array, row: number) => void,
): void {
  for (const batch of batches(ds, {
    batchSize: 256,
    shuffle: false,
    normalise,
    indices: positions,
  })) {
    tf.tidy(() => {
      const x = batchToTensor(model, batch);
      const { logits, routing } = model.forward(
        x,
        cache ? { expertLogits: cache.provider(x, batch.positions) } : {},
      );
      const probs = tf.softmax(logits).dataSync() as Float32Array;
      for (let b = 0; b < batch.size; b++) record(batch.positions[b]!, probs, routing.chosen, b);
    });
  }
}

/** Index of the largest value, the lowest index on ties (as tf.argMax). */
function argMax(row: Float32Array): number {
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c]! > row[best]!) best = c;
  return best;
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

/** Accuracy, per-class accuracy, confusion and routing from outputs already computed. */
export function evaluationOf(outputs: ModelOutputs, numClasses: number): Evaluation {
  const confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  outputs.labels.forEach((label, i) => confusion[label]![outputs.pred[i]!]!++);
  return evaluationFrom(confusion, outputs.routing);
}
