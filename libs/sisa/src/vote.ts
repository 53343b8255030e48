import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { type ChannelStats, type Dataset, gatherBatch } from '@lethe/data';
import { loadModel, type MoEModel } from '@lethe/model';
import { type ObjectStore } from '@lethe/store';
import { loadSisa } from './sisa-model';

export interface VoteOptions {
  /**
   * false (default): every shard model's softmax counts the same — the prediction is the argmax
   * of their mean. true: each shard model's softmax is weighted by its accuracy on a held-out
   * part (weights normalised to sum 1; all zero falls back to uniform).
   */
  weighted?: boolean;
  /**
   * Where the weights are measured. Default: a seeded share (`heldOutFraction`) of `test`, which
   * is then left out of the scored samples, so a weighted score never sees its own weights' data.
   */
  validation?: Dataset;
  /** Share of `test` held out for the weights when no `validation` set is given. Default 0.2. */
  heldOutFraction?: number;
  batchSize?: number;
}

export interface VoteEvaluation {
  aggregator: 'uniform' | 'weighted';
  /** Samples scored (for weighted without `validation`: those of `test` outside the held-out part). */
  count: number;
  correct: number;
  /** Fraction in [0, 1] (NaN with no samples). */
  accuracy: number;
  /** Per true class: samples, correct predictions, accuracy (NaN where a class has no samples). */
  perClass: { total: number; correct: number; accuracy: number }[];
  /** [true class][predicted class] counts. */
  confusion: number[][];
  /** Each shard model's vote weight, summing to 1. */
  weights: number[];
  /** Each shard model's own accuracy on the held-out part (weighted only). */
  expertAccuracy?: number[];
  /** Samples the weights were measured on (0 for uniform). */
  heldOut: number;
  /** Dataset positions of the scored samples, increasing, and the predicted class of each. */
  positions: Int32Array;
  predictions: Int32Array;
}

/**
 * Evaluates the stored sisa model with SISA's `vote` aggregator instead of its router: every
 * shard model (expert) predicts every sample, and their softmax outputs are averaged —
 * uniformly, or weighted by each one's accuracy on a held-out part — then the argmax is taken.
 * For comparison with the routed prediction; the router plays no part.
 */
export async function evaluateVote(
  store: ObjectStore,
  test: Dataset,
  options: VoteOptions = {},
): Promise<VoteEvaluation> {
  await loadSisa(store); // refuses a joint-mode model with the same message as forgetting
  const { model, card } = await loadModel(store);
  try {
    const normalise = card.normalisation as ChannelStats;
    const batchSize = options.batchSize ?? 256;
    const experts = card.config.experts;
    const classes = card.config.numClasses;
    let scored = Int32Array.from({ length: test.size }, (_, p) => p);
    let weights = new Array<number>(experts).fill(1 / experts);
    let expertAccuracy: number[] | undefined;
    let heldOut = 0;
    if (options.weighted) {
      let held: { ds: Dataset; positions: Int32Array };
      if (options.validation) {
        const ds = options.validation;
        held = { ds, positions: Int32Array.from({ length: ds.size }, (_, p) => p) };
      } else {
        const fraction = options.heldOutFraction ?? 0.2;
        if (!(fraction > 0 && fraction < 1))
          throw new RangeError(`heldOutFraction must be in (0, 1), got ${fraction}`);
        const isHeld = (p: number): boolean =>
          createHash('sha256')
            .update(`vote\n${test.name}:${test.split}:${test.indices[p]}`)
            .digest()
            .readUInt32BE(0) /
            2 ** 32 <
          fraction;
        held = { ds: test, positions: scored.filter(isHeld) };
        scored = scored.filter((p) => !isHeld(p));
      }
      heldOut = held.positions.length;
      const probs = await expertProbabilities(model, held.ds, held.positions, normalise, batchSize);
      expertAccuracy = probs.map((table) => {
        let correct = 0;
        held.positions.forEach((p, i) => {
          if (argmax(table, i, classes) === held.ds.labels[p]) correct++;
        });
        return heldOut === 0 ? 0 : correct / heldOut;
      });
      const total = expertAccuracy.reduce((a, b) => a + b, 0);
      weights = total > 0 ? expertAccuracy.map((a) => a / total) : weights;
    }
    const probs = await expertProbabilities(model, test, scored, normalise, batchSize);
    const predictions = new Int32Array(scored.length);
    const mixed = new Float64Array(classes);
    for (let i = 0; i < scored.length; i++) {
      mixed.fill(0);
      for (let e = 0; e < experts; e++) {
        const table = probs[e]!;
        for (let c = 0; c < classes; c++) mixed[c]! += weights[e]! * table[i * classes + c]!;
      }
      predictions[i] = argmax(mixed, 0, classes);
    }
    const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
    scored.forEach((p, i) => confusion[test.labels[p]!]![predictions[i]!]!++);
    const perClass = confusion.map((row, c) => {
      const total = row.reduce((a, b) => a + b, 0);
      const correct = row[c]!;
      return { total, correct, accuracy: total === 0 ? Number.NaN : correct / total };
    });
    const count = perClass.reduce((n, p) => n + p.total, 0);
    const correct = perClass.reduce((n, p) => n + p.correct, 0);
    return {
      aggregator: options.weighted ? 'weighted' : 'uniform',
      count,
      correct,
      accuracy: count === 0 ? Number.NaN : correct / count,
      perClass,
      confusion,
      weights,
      ...(expertAccuracy ? { expertAccuracy } : {}),
      heldOut,
      positions: scored,
      predictions,
    };
  } finally {
    model.dispose();
  }
}

/** The first index of the largest of `classes` values from row `row`. */
function argmax(values: ArrayLike<number>, row: number, classes: number): number {
  let best = 0;
  for (let c = 1; c < classes; c++) {
    if (values[row * classes + c]! > values[row * classes + best]!) best = c;
  }
  return best;
}

/** Every expert's softmax on the given positions: one [n, C] table per expert, in order. */
async function expertProbabilities(
  model: MoEModel,
  ds: Dataset,
  positions: Int32Array,
  normalise: ChannelStats,
  batchSize: number,
): Promise<Float32Array[]> {
  const classes = model.config.numClasses;
  const [h, w, c] = model.config.inputShape;
  const tables = Array.from(
    { length: model.config.experts },
    () => new Float32Array(positions.length * classes),
  );
  for (let b = 0; b < positions.length; b += batchSize) {
    const batch = gatherBatch(ds, positions.subarray(b, b + batchSize), { normalise });
    const x = tf.tensor4d(batch.x.subarray(0, batch.size * h * w * c), [batch.size, h, w, c]);
    try {
      tables.forEach((table, e) => {
        const probs = tf.tidy(() => tf.softmax(model.expertLogits(e, x)));
        table.set(probs.dataSync(), b * classes);
        probs.dispose();
      });
    } finally {
      x.dispose();
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return tables;
}
