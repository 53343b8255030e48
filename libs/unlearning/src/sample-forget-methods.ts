import * as tf from '@tensorflow/tfjs-core';
import type { ChannelStats, Dataset } from '@lethe/data';
import {
  type ModulePart,
  type MoEModel,
  perSampleCrossEntropy,
  type StepProgress,
  type TaskLoss,
} from '@lethe/model';
import {
  fit,
  type ForgetOutcome,
  pickRetained,
  type RemoteExperts,
  retrainFresh,
  type RoutedHook,
  targetedParts,
  Teacher,
  type TrainingRecipe,
} from './forget-methods';
import type { FrozenExpertCache } from './frozen-expert-cache';
import type { OutputMemo } from './output-memo';
import type { SampleForgetMethod } from '@lethe/ledger';

/**
 * Approximate forgetting of training samples on a joint model. Every method but `retrain`
 * retrains only the router and the experts the samples were routed to during training (from the
 * routing lineage), frozen experts served from the cache, on all forgotten samples plus a seeded
 * share of the retained ones; they differ in the objective:
 * - `finetune`: cross-entropy on the retained samples only (the forgotten ones are left out);
 * - `neggrad+`: descent on the retained samples, λ-weighted ascent on the forgotten ones
 *   (Kurmanji et al. 2023), the ascent stopped per sample once its loss reaches the model's
 *   mean loss on held-out samples (`ascentStop`; chance's when not given); with an `anchor`,
 *   the retained samples' descent adds μ · KL(original outputs ‖ new outputs), SCRUB's "stay
 *   close" term, so the ascent's pull on the shared weights moves them less;
 * - `scrub`: SCRUB-style distillation (Kurmanji et al. 2023): stay close to the original model
 *   on retained samples (KL to its outputs, plus cross-entropy), move away from it on forgotten
 *   ones (λ · KL, maximised, capped at chance's);
 * - `l1-sparse`: fine-tuning with an ℓ1 penalty on the retrained weights, decaying linearly to 0
 *   over the run (Jia et al. 2023, "model sparsity can simplify machine unlearning");
 * - `retrain`: the oracle — a fresh model, the stored recipe, the training set without them.
 */
// (The method names are the receipt's vocabulary: @lethe/ledger owns the list.)
export { SAMPLE_FORGET_METHODS, type SampleForgetMethod } from '@lethe/ledger';

export interface SampleForgetRun {
  model: MoEModel;
  /** The training set (without what the erasure ledger held before this request). */
  train: Dataset;
  normalise: ChannelStats;
  /** Training positions of the samples to forget, increasing. */
  forgotten: Int32Array;
  /** Experts to retrain with the router (all but `retrain`). */
  experts: readonly number[];
  /** Retained positions routed to a retrained expert: they get most of the retained budget. */
  routedRetained?: Int32Array;
  epochs: number;
  learningRate: number;
  batchSize: number;
  /** Weight of the forgetting term (neggrad+, scrub) or of the ℓ1 penalty (l1-sparse). */
  lambda: number;
  /** neggrad+: weight μ of the anchor to the original outputs on retained samples (default 0). */
  anchor?: number;
  /**
   * The model's outputs on the training set as the "before" measurement left them: the anchor
   * takes its targets from here where the memo holds them, and runs the model on the rest.
   */
  originalOutputs?: OutputMemo;
  /**
   * neggrad+: the loss at which a forgotten sample's ascent stops — the model's mean loss on
   * samples it never saw (`heldOutLoss` of the test split). Default (and at most): chance's, ln C.
   */
  ascentStop?: number;
  /** Share of the retained samples retrained on (seeded, fixed for the run). */
  retainFraction: number;
  seed: number;
  recipe: TrainingRecipe;
  cache?: FrozenExpertCache;
  onStep?: (progress: StepProgress) => void;
  signal?: AbortSignal;
  /** Where the retrained experts step; default in this process. */
  remoteExperts?: RemoteExperts;
  /** Where each retraining step routed its samples (to extend the routing lineage). */
  onRouted?: RoutedHook;
}

/** Runs one sample-forgetting method on a loaded model. */
export async function runSampleForgetMethod(
  method: SampleForgetMethod,
  run: SampleForgetRun,
): Promise<ForgetOutcome> {
  const started = performance.now();
  const outcome =
    method === 'retrain'
      ? await retrainFresh(run, retainedPositions(run))
      : await targetedSampleForget(method, run);
  return { ...outcome, seconds: (performance.now() - started) / 1000 };
}

/** Training positions not being forgotten. */
function retainedPositions(run: SampleForgetRun): Int32Array {
  const gone = new Uint8Array(run.train.size);
  for (const p of run.forgotten) gone[p] = 1;
  return Int32Array.from({ length: run.train.size }, (_, i) => i).filter((p) => !gone[p]);
}

/** The positions an approximate method retrains on: all forgotten plus a share of retained. */
export function sampleForgetSubset(run: SampleForgetRun): Int32Array {
  return pickRetained({
    forgotten: run.forgotten,
    retained: retainedPositions(run),
    routed: run.routedRetained ? Int32Array.from(run.routedRetained) : undefined,
    size: run.train.size,
    fraction: run.retainFraction,
    seed: run.seed,
  });
}

async function targetedSampleForget(
  method: Exclude<SampleForgetMethod, 'retrain'>,
  run: SampleForgetRun,
): Promise<Omit<ForgetOutcome, 'seconds'>> {
  if (method === 'l1-sparse' && run.remoteExperts) {
    // The penalty needs the experts' weights inside this step's gradient tape.
    throw new Error('l1-sparse retrains its experts in this process, not on workers');
  }
  const { trainable, cache } = targetedParts(run.model, run.experts, run.train, run.cache);
  const subset = sampleForgetSubset(run);
  const isForgotten = new Uint8Array(run.train.size);
  for (const p of run.forgotten) isForgotten[p] = 1;
  // fine-tuning never sees the forgotten samples; the others need them in their batches.
  const indices =
    method === 'finetune' || method === 'l1-sparse'
      ? subset.filter((p) => !isForgotten[p])
      : subset;
  const anchor = method === 'neggrad+' ? (run.anchor ?? 0) : 0;
  const teacher = method === 'scrub' ? await Teacher.record(run, indices, cache, []) : undefined;
  const anchorTargets = anchor > 0 ? await originalTargets(run, indices, cache) : undefined;
  const mask = (positions: Int32Array, size: number): Float32Array =>
    Float32Array.from({ length: size }, (_, b) => isForgotten[positions[b]!]!);
  const chance = Math.log(run.model.config.numClasses);
  const stop = Math.min(chance, run.ascentStop ?? chance);
  const steps = run.epochs * Math.ceil(indices.length / run.batchSize);
  let step = 0;
  const batchLoss = (positions: Int32Array, size: number): TaskLoss => {
    const forgotten = mask(positions, size);
    switch (method) {
      case 'neggrad+': {
        const targets = anchorTargets?.(positions, size);
        return (logits, labels) => {
          const f = tf.tensor1d(forgotten);
          const ce = perSampleCrossEntropy(logits, labels);
          // Ascent only until a sample looks unseen — the model's loss on held-out samples, which
          // is what retraining without it gives (docs/forgetting-samples.md) — not further:
          // beyond it the ascent pushes the sample below what the oracle scores, and unbounded
          // ascent diverges and takes the retained samples with it.
          const ascent = tf.minimum(ce, stop);
          const keep = targets ? tf.add(ce, tf.mul(teacherKl(targets, logits), anchor)) : ce;
          return tf.mean(
            tf.sub(tf.mul(tf.sub(1, f), keep), tf.mul(f, tf.mul(ascent, run.lambda))),
          ) as tf.Scalar;
        };
      }
      case 'scrub': {
        const { targets } = teacher!.rows(positions, size);
        return (logits, labels) => {
          const f = tf.tensor1d(forgotten);
          const kl = teacherKl(targets, logits);
          const ce = perSampleCrossEntropy(logits, labels);
          const keep = tf.mul(tf.sub(1, f), tf.add(kl, ce));
          const away = tf.mul(f, tf.mul(tf.minimum(kl, chance), run.lambda));
          return tf.mean(tf.sub(keep, away)) as tf.Scalar;
        };
      }
      case 'l1-sparse': {
        const weight = run.lambda * Math.max(0, 1 - step++ / steps);
        const variables = trainable.flatMap((p: ModulePart) =>
          run.model.part(p).params.trainable(),
        );
        return (logits, labels) => {
          const ce = tf.mean(perSampleCrossEntropy(logits, labels));
          if (weight === 0) return ce as tf.Scalar;
          const l1 = tf.addN(variables.map((v) => tf.sum(tf.abs(v))));
          return tf.add(ce, tf.mul(l1, weight)) as tf.Scalar;
        };
      }
      case 'finetune':
        return (logits, labels) => tf.mean(perSampleCrossEntropy(logits, labels)) as tf.Scalar;
    }
  };
  const remote = run.remoteExperts;
  await remote?.prepare(run.model, run.experts);
  const history = await fit(run, run.model, {
    trainable,
    cache,
    indices,
    batchLoss,
    // The statistics every other sample is normalised with stay those of the full training
    // set; a subset's batch moments (or an ascent step's) would shift them for everyone.
    frozenBatchNorm: true,
    ...(remote ? { executor: remote } : {}),
    ...(run.onRouted ? { onRouted: run.onRouted } : {}),
  });
  await remote?.collect(run.model, run.experts);
  return {
    model: run.model,
    parts: trainable,
    history,
    suppressClasses: [],
    frozenExpertPasses: cache.stats(),
  };
}

/**
 * The original model's softmax on `positions`, batch by batch: read from the "before" memo where
 * it holds them (no second pass over what the measurement just ran), recorded by a `Teacher`
 * pass for the rest (the measurement samples at most 5,000 retained samples).
 */
async function originalTargets(
  run: SampleForgetRun,
  positions: Int32Array,
  cache: FrozenExpertCache,
): Promise<(batch: Int32Array, size: number) => Float32Array> {
  const memo = run.originalOutputs;
  const missing = memo ? memo.missing(run.train, positions) : positions;
  const teacher = missing.length > 0 ? await Teacher.record(run, missing, cache, []) : undefined;
  const classes = run.model.config.numClasses;
  return (batch, size) => {
    const targets = new Float32Array(size * classes);
    for (let b = 0; b < size; b++) {
      const slot = run.train.indices[batch[b]!]!;
      const row =
        memo?.known[slot] === 1
          ? memo.probs.subarray(slot * classes, (slot + 1) * classes)
          : teacher!.rows(batch.subarray(b, b + 1), 1).targets;
      targets.set(row, b * classes);
    }
    return targets;
  };
}

/** Per sample KL(teacher's softmax ‖ softmax(logits)): how far the outputs moved. */
function teacherKl(targets: Float32Array, logits: tf.Tensor2D): tf.Tensor1D {
  const t = tf.tensor2d(targets, logits.shape);
  return tf.sum(
    tf.mul(t, tf.sub(tf.log(tf.add(t, 1e-9)), tf.logSoftmax(logits))),
    1,
  ) as tf.Tensor1D;
}
