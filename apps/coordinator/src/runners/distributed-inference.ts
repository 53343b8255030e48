import * as tf from '@tensorflow/tfjs-core';
import { batches, type ChannelStats, type Dataset } from '@lethe/data';
import { batchToTensor, type MoEModel } from '@lethe/model';
import { type Float32Tensor, fromFloat32Tensor } from '@lethe/proto';
import { cancelled } from '@lethe/rpc';
import type { OutputMemo } from '@lethe/unlearning';
import type { ExpertSession } from '../workers/expert-session';

export interface DistributedEvaluation {
  samples: number;
  correct: number;
  accuracy: number;
  perClass: { samples: number; correct: number }[];
  /** [class][expert] top-k activations by true class. */
  routing: number[][];
  /** [true][predicted]. */
  confusion: number[][];
  seconds: number;
}

/**
 * Evaluates the model with its experts on their workers: the router here picks each sample's
 * experts, each worker returns inference logits for the samples routed to its experts (by index,
 * from its copy of the data), and the gate-weighted sum is the prediction. With a memo, each
 * evaluated sample's raw softmax and chosen experts go into it, as libs/unlearning's
 * modelOutputs records them, so a forget's "before" finds them instead of running the model.
 */
export async function evaluateDistributed(
  model: MoEModel,
  session: ExpertSession,
  datasetKey: string,
  data: Dataset,
  normalise: ChannelStats,
  options: {
    batchSize?: number;
    suppressClasses?: readonly number[];
    /** Stops between batches (a client cancelled, or its deadline passed). */
    signal?: AbortSignal;
    /** Only these positions of `data` (all by default). */
    positions?: Int32Array;
    /** Filled with the outputs of every evaluated sample, before any output mask. */
    memo?: OutputMemo;
  } = {},
): Promise<DistributedEvaluation> {
  const started = performance.now();
  const classes = model.config.numClasses;
  const experts = model.config.experts;
  const { memo, positions } = options;
  const slots = positions ? Int32Array.from(positions, (p) => data.indices[p]!) : data.indices;
  if (
    memo &&
    (memo.classes !== classes ||
      memo.topK !== model.config.topK ||
      slots.some((s) => s >= memo.size))
  ) {
    throw new Error('the output memo was made for another dataset or model shape');
  }
  const mask = options.suppressClasses?.length
    ? Float32Array.from({ length: classes }, (_, c) =>
        options.suppressClasses!.includes(c) ? -1e9 : 0,
      )
    : undefined;
  const perClass = Array.from({ length: classes }, () => ({ samples: 0, correct: 0 }));
  const routing = Array.from({ length: classes }, () => new Array<number>(experts).fill(0));
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let correct = 0;
  for (const batch of batches(data, {
    batchSize: options.batchSize ?? 256,
    shuffle: false,
    normalise,
    ...(positions ? { indices: positions } : {}),
  })) {
    if (options.signal?.aborted) throw cancelled('evaluation cancelled');
    const x = batchToTensor(model, batch);
    try {
      const assignments = model.route(x);
      const fetched = await fetchExpertLogits(assignments, async (e, positions) => {
        const response = await session.call(
          e,
          (c) => c.forward,
          {
            stepId: 0,
            expertId: e,
            datasetKey,
            indices: Array.from(positions, (p) => batch.indices[p]!),
            training: false,
            frozenBatchNorm: false,
            augmentation: undefined,
            copy: session.copy,
          },
          { label: 'Forward' },
        );
        return response!.logits!;
      });
      const predicted = tf.tidy(() => {
        const { logits, routing: routed } = model.forward(x, {
          expertLogits: expertLogitsFrom(fetched, classes),
        });
        if (memo) {
          const probs = tf.softmax(logits).dataSync() as Float32Array;
          for (let b = 0; b < batch.size; b++)
            memo.record(batch.indices[b]!, probs, routed.chosen, b);
        }
        // The output mask as MoEModel.forward applies it; the memo keeps what the weights say.
        const served = mask ? tf.add(logits, tf.tensor1d(mask)) : logits;
        return tf.argMax(served, 1).dataSync() as Int32Array;
      });
      assignments.forEach((positions, e) => {
        for (const p of positions) routing[batch.y[p]!]![e]!++;
      });
      for (let i = 0; i < batch.size; i++) {
        const label = batch.y[i]!;
        const guess = predicted[i]!;
        perClass[label]!.samples++;
        confusion[label]![guess]!++;
        if (guess === label) {
          perClass[label]!.correct++;
          correct++;
        }
      }
    } finally {
      x.dispose();
    }
  }
  const samples = positions?.length ?? data.size;
  return {
    samples,
    correct,
    accuracy: samples === 0 ? 0 : correct / samples,
    perClass,
    routing,
    confusion,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Each routed expert's inference logits, fetched from its worker concurrently. */
export async function fetchExpertLogits(
  assignments: readonly Int32Array[],
  fetch: (expert: number, positions: Int32Array) => Promise<Float32Tensor>,
): Promise<Map<number, Float32Array>> {
  const fetched = new Map<number, Float32Array>();
  await Promise.all(
    assignments.map(async (positions, e) => {
      if (positions.length > 0) fetched.set(e, fromFloat32Tensor(await fetch(e, positions)).values);
    }),
  );
  return fetched;
}

/** The model's expertLogits hook over logits fetched from workers. */
export function expertLogitsFrom(
  fetched: ReadonlyMap<number, Float32Array>,
  classes: number,
): (expert: number, positions: Int32Array) => tf.Tensor2D {
  return (e, positions) => tf.tensor2d(fetched.get(e)!, [positions.length, classes]);
}
