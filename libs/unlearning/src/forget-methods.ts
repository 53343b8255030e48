import { engineInfo } from '@lethe/engine';
import * as tf from '@tensorflow/tfjs-core';
import type { ObjectRef, ObjectStore } from '@lethe/store';
import { batches, type ChannelStats, createRng, type Dataset, deriveSeed } from '@lethe/data';
import {
  type ArrayBatch,
  batchToTensor,
  crossEntropy,
  type EpochSummary,
  type ModulePart,
  MoEModel,
  storeParts,
  perSampleComplementCrossEntropy,
  perSampleCrossEntropy,
  type ScheduleName,
  type StepExecutor,
  type StepProgress,
  type TaskLoss,
  trainModel,
} from '@lethe/model';
import { type TrainingRouting, routedTo } from './forget-plan';
import { FrozenExpertCache } from './frozen-expert-cache';

// The method and loss names are the receipt's vocabulary: @lethe/ledger owns them.
import type { ForgetMethod, UnlearningLoss } from '@lethe/ledger';
export {
  FORGET_METHODS,
  type ForgetMethod,
  UNLEARNING_LOSSES,
  type UnlearningLoss,
} from '@lethe/ledger';

/** The recipe the stored model was trained with; `retrain` repeats it without the class. */
export interface TrainingRecipe {
  epochs: number;
  batchSize: number;
  learningRate: number;
  schedule: ScheduleName;
  weightDecay: number;
  augment: boolean;
  seed: number;
}

export interface ForgetRun {
  model: MoEModel;
  train: Dataset;
  normalise: ChannelStats;
  classIndex: number;
  /** Experts to retrain (targeted only). */
  experts: readonly number[];
  epochs: number;
  learningRate: number;
  batchSize: number;
  loss: UnlearningLoss;
  /** Weight λ of the unlearning term against cross-entropy on retained samples. */
  lambda: number;
  /**
   * Targeted only: share of the retained training samples retrained on (seeded, fixed for the
   * run), next to all forgotten samples. 1 = the full recipe; smaller trades retained accuracy
   * for speed. With `routing`, the share is drawn mostly from samples routed to the retrained
   * experts (see retainSubset).
   */
  retainFraction: number;
  /**
   * Targeted distill only: weight μ of the router anchor, μ · KL(old gates ‖ new gates) on
   * retained samples, which keeps the other classes' routing where it was. 0 turns it off.
   */
  anchor: number;
  /** Where the router sent each training sample before forgetting (from the plan). */
  routing?: TrainingRouting;
  /** Frozen experts' logits on training positions, shared with the measurements. */
  cache?: FrozenExpertCache;
  seed: number;
  recipe: TrainingRecipe;
  onStep?: (progress: StepProgress) => void;
  signal?: AbortSignal;
  /** Targeted only: where the retrained experts run; default in this process. */
  remoteExperts?: RemoteExperts;
}

/**
 * Experts hosted elsewhere (on workers) for the targeted method: the router steps here, the
 * chosen experts step where they live, frozen experts' logits come from the local cache.
 */
export interface RemoteExperts extends StepExecutor {
  /** Before retraining: make the workers hold `experts` at the weights `model` holds. */
  prepare(model: MoEModel, experts: readonly number[]): Promise<void>;
  /** After retraining: copy the retrained experts' weights into `model`. */
  collect(model: MoEModel, experts: readonly number[]): Promise<void>;
}

export interface ForgetOutcome {
  /** The model after forgetting: `run.model` itself, or a new one (retrain). */
  model: MoEModel;
  parts: ModulePart[];
  history: EpochSummary[];
  seconds: number;
  /** Classes the output must never predict (mask). */
  suppressClasses: number[];
  frozenExpertPasses?: { computed: number; reused: number };
}

/**
 * What every approximate receipt (class or samples) records of a finished run: the parts whose
 * weights changed, both weight sets and manifest revisions, the engine, and the epochs run.
 */
export function receiptOfRun(
  outcome: Pick<ForgetOutcome, 'history' | 'frozenExpertPasses'>,
  weights: { before: Record<string, string>; after: Record<string, string> },
  revision: number,
) {
  return {
    partsChanged: Object.keys(weights.after).filter((p) => weights.after[p] !== weights.before[p]),
    weights,
    manifest: { before: revision, after: revision + 1 },
    engine: engineInfo()?.engine ?? 'unknown',
    history: outcome.history.map(({ epoch, loss, accuracy, images, seconds }) => ({
      epoch,
      loss,
      accuracy,
      images,
      seconds,
    })),
    ...(outcome.frozenExpertPasses ? { frozenExpertPasses: outcome.frozenExpertPasses } : {}),
  };
}

/**
 * Stores the retrained parts of `model` as content-addressed objects; the weight hashes after
 * the forget are those before with the stored parts' replaced.
 */
export async function storeRetrainedParts(
  store: ObjectStore,
  model: MoEModel,
  parts: readonly ModulePart[],
  before: Record<string, string>,
): Promise<{ refs: Partial<Record<ModulePart, ObjectRef>>; afterHashes: Record<string, string> }> {
  const refs = await storeParts(store, model, parts);
  const afterHashes = {
    ...before,
    ...Object.fromEntries(Object.entries(refs).map(([p, r]) => [p, r!.sha256])),
  };
  return { refs, afterHashes };
}

/** The experts among the retrained parts, by index. */
export function expertsOf(parts: readonly ModulePart[]): number[] {
  return parts.filter((p) => p !== 'router').map((p) => Number(p.slice('expert/'.length)));
}

/** Runs one forgetting method on a loaded model. */
export async function runForgetMethod(
  method: ForgetMethod,
  run: ForgetRun,
): Promise<ForgetOutcome> {
  const started = performance.now();
  const outcome = await METHODS[method](run);
  return { ...outcome, seconds: (performance.now() - started) / 1000 };
}

type MethodImpl = (run: ForgetRun) => Promise<Omit<ForgetOutcome, 'seconds'>>;

const allParts = (model: MoEModel): ModulePart[] => MoEModel.parts(model.config.experts);

const positionsWhere = (ds: Dataset, keep: (label: number) => boolean): Int32Array =>
  Int32Array.from({ length: ds.size }, (_, i) => i).filter((i) => keep(ds.labels[i]!));

/**
 * Replaces the labels of the forgotten class with seeded random other classes: the
 * `random-label` objective, as cross-entropy on relabelled data.
 */
function relabel(
  batchesOf: Iterable<ArrayBatch>,
  run: ForgetRun,
  epoch: number,
): Iterable<ArrayBatch> {
  const classes = run.train.classes.length;
  return {
    *[Symbol.iterator]() {
      let b = 0;
      for (const batch of batchesOf) {
        const rng = createRng(deriveSeed(run.seed, 'random-label', epoch, b++));
        const y = Int32Array.from(batch.y, (label) =>
          label === run.classIndex ? (run.classIndex + 1 + rng.int(classes - 1)) % classes : label,
        );
        yield { ...batch, y };
      }
    },
  };
}

function epochBatches(run: FitRun, epoch: number, indices?: Int32Array): Iterable<ArrayBatch> {
  return batches(run.train, {
    batchSize: run.batchSize,
    seed: deriveSeed(run.seed, 'forget'),
    epoch,
    shuffle: true,
    normalise: run.normalise,
    ...(indices ? { indices } : {}),
  });
}

/** What `fit` needs of a run: the data, the optimiser's recipe and the job's hooks. */
export type FitRun = Pick<
  ForgetRun,
  'train' | 'normalise' | 'epochs' | 'learningRate' | 'batchSize' | 'seed' | 'onStep' | 'signal'
>;

/** Where each step routed its samples: positions in the training set, [B × k] experts. */
export type RoutedHook = (epoch: number, positions: Int32Array, chosen: Int32Array) => void;

/**
 * Retrains `trainable` parts of `model` for `run.epochs` on `indices` (default: the whole
 * set), shuffled, without augmentation, at a constant learning rate, with a fresh optimizer.
 */
export async function fit(
  run: FitRun,
  model: MoEModel,
  options: {
    trainable: ModulePart[];
    indices?: Int32Array;
    loss?: TaskLoss;
    /** A loss per batch, from the batch's training positions (and the epoch it belongs to). */
    batchLoss?: (positions: Int32Array, size: number, epoch: number) => TaskLoss;
    /** Rewrites each epoch's batches (e.g. relabels the forgotten class). */
    mapBatches?: (plain: Iterable<ArrayBatch>, epoch: number) => Iterable<ArrayBatch>;
    cache?: FrozenExpertCache;
    executor?: StepExecutor;
    frozenBatchNorm?: boolean;
    routingLosses?: boolean;
    /** Called after every step with where the router sent the batch (for lineage). */
    onRouted?: RoutedHook;
  },
): Promise<EpochSummary[]> {
  const size = options.indices?.length ?? run.train.size;
  model.resetOptimizer();
  let epochNow = 0;
  const inner = options.executor;
  const onRouted = options.onRouted;
  const executor: StepExecutor | undefined = onRouted
    ? {
        step: async (m, step) => {
          const result = inner
            ? await inner.step(m, step)
            : m.trainStep(step.x, step.y, step.options);
          if (step.batch.positions) onRouted(step.epoch, step.batch.positions, result.chosen);
          return result;
        },
      }
    : inner;
  return trainModel(model, {
    epochs: run.epochs,
    stepsPerEpoch: Math.ceil(size / run.batchSize),
    learningRate: run.learningRate,
    schedule: 'constant',
    trainable: new Set(options.trainable),
    ...(options.frozenBatchNorm ? { frozenBatchNorm: true } : {}),
    ...(options.routingLosses === false ? { routingLosses: false } : {}),
    batches: (epoch) => {
      epochNow = epoch;
      const plain = epochBatches(run, epoch, options.indices);
      return options.mapBatches ? options.mapBatches(plain, epoch) : plain;
    },
    perBatch: (batch, x) => ({
      ...(options.loss ? { loss: options.loss } : {}),
      ...(options.batchLoss && batch.positions
        ? { loss: options.batchLoss(batch.positions, batch.size, epochNow) }
        : {}),
      ...(options.cache && batch.positions
        ? { expertLogits: options.cache.provider(x, batch.positions) }
        : {}),
    }),
    ...(run.onStep ? { onStep: run.onStep } : {}),
    ...(run.signal ? { signal: run.signal } : {}),
    ...(executor ? { executor } : {}),
  });
}

/** Share of the retained budget drawn from samples routed to the retrained experts. */
const ROUTED_SHARE = 0.75;

/**
 * Every forgotten sample plus a seeded `retainFraction` of the retained ones, in position order.
 * Retained samples routed to a retrained expert are the ones whose outputs the retraining
 * changes directly, so they get ROUTED_SHARE of the budget; the rest change only through the
 * router, which the anchor holds, and fill the remainder so the router still sees every class.
 */
function retainSubset(run: ForgetRun): Int32Array {
  const keepRetained = (label: number): boolean => label !== run.classIndex;
  return pickRetained({
    forgotten: positionsWhere(run.train, (label) => label === run.classIndex),
    retained: positionsWhere(run.train, keepRetained),
    routed: run.routing ? routedTo(run.routing, run.train, run.experts, keepRetained) : undefined,
    size: run.train.size,
    fraction: run.retainFraction,
    seed: run.seed,
  });
}

/**
 * `forgotten` plus a seeded `fraction` of `retained`, sorted; with `routed` (the retained
 * positions routed to the retrained experts), ROUTED_SHARE of the budget is drawn from those.
 */
export function pickRetained(pick: {
  forgotten: Int32Array;
  retained: Int32Array;
  routed: Int32Array | undefined;
  /** Positions in the training set (for the routed lookup). */
  size: number;
  fraction: number;
  seed: number;
}): Int32Array {
  const { forgotten, retained, routed } = pick;
  const budget = Math.max(1, Math.round(retained.length * pick.fraction));
  const rng = createRng(deriveSeed(pick.seed, 'retain-subset'));
  if (!routed)
    return Int32Array.from([...forgotten, ...rng.shuffle(retained).slice(0, budget)]).sort();
  const isRouted = new Uint8Array(pick.size);
  for (const p of routed) isRouted[p] = 1;
  const rest = retained.filter((p) => !isRouted[p]);
  // Either side short of its share leaves the rest of the budget to the other.
  const fromRest = Math.min(
    rest.length,
    budget - Math.min(routed.length, Math.round(budget * ROUTED_SHARE)),
  );
  const picked = [
    ...rng.shuffle(routed).slice(0, budget - fromRest),
    ...rng.shuffle(rest).slice(0, fromRest),
  ];
  return Int32Array.from([...forgotten, ...picked]).sort();
}

/** Cross-entropy on retained samples plus λ · complement cross-entropy on the forgotten class. */
function complementObjective(classIndex: number, lambda: number): TaskLoss {
  return (logits, labels) => {
    const forgotten = tf.cast(tf.equal(labels, classIndex), 'float32');
    const retained = tf.sub(1, forgotten);
    const ce = perSampleCrossEntropy(logits, labels);
    const unlearn = perSampleComplementCrossEntropy(logits, labels);
    return tf.mean(
      tf.add(tf.mul(retained, ce), tf.mul(forgotten, tf.mul(unlearn, lambda))),
    ) as tf.Scalar;
  };
}

/**
 * What the model said before forgetting, per training position it will be retrained on: its
 * softmax (optionally with some classes taken out and the rest renormalised) and the router's
 * softmax. Recorded in one inference pass before the first step, which also fills the
 * frozen-expert cache. The `distill` class objective and the sample methods' SCRUB objective
 * train towards (or away from) these targets.
 */
export class Teacher {
  /** Dataset position → its row in `targets`. */
  private readonly rowOf = new Map<number, number>();
  readonly classes: number;
  readonly experts: number;

  private constructor(
    /** One row of targets per position trained on, in the order of `positions`. */
    private readonly targets: Float32Array,
    /** The router's softmax per position before forgetting, rows as `targets`. */
    private readonly gates: Float32Array,
    positions: Int32Array,
  ) {
    this.classes = targets.length / Math.max(1, positions.length);
    this.experts = gates.length / Math.max(1, positions.length);
    positions.forEach((p, row) => this.rowOf.set(p, row));
  }

  /** Runs the model, as it is before any step, over `positions` (inference mode). */
  static async record(
    source: {
      model: MoEModel;
      train: Dataset;
      normalise: ChannelStats;
      signal?: AbortSignal | undefined;
    },
    positions: Int32Array,
    cache: FrozenExpertCache | undefined,
    suppressClasses: readonly number[],
  ): Promise<Teacher> {
    const { model } = source;
    const classes = model.config.numClasses;
    const targets = new Float32Array(positions.length * classes);
    const experts = model.config.experts;
    const gates = new Float32Array(positions.length * experts);
    let row = 0;
    for (const batch of batches(source.train, {
      batchSize: 256,
      shuffle: false,
      normalise: source.normalise,
      indices: positions,
    })) {
      // A pass over a large training set takes minutes: let the process serve (a coordinator's
      // gRPC calls) and a cancelled job stop between batches.
      await new Promise((resolve) => setImmediate(resolve));
      if (source.signal?.aborted) throw new Error('forgetting cancelled');
      const [probs, routerProbs] = tf.tidy(() => {
        const x = batchToTensor(model, batch);
        const { logits, routing } = model.forward(x, {
          ...(cache ? { expertLogits: cache.provider(x, batch.positions) } : {}),
          suppressClasses,
        });
        return [
          tf.softmax(logits).dataSync() as Float32Array,
          routing.probs.dataSync() as Float32Array,
        ];
      });
      // Unshuffled batches over `positions` visit them in order.
      targets.set(probs.subarray(0, batch.size * classes), row * classes);
      gates.set(routerProbs.subarray(0, batch.size * experts), row * experts);
      row += batch.size;
    }
    return new Teacher(targets, gates, positions);
  }

  /** The recorded rows of a batch: targets [size × classes] and gates [size × experts]. */
  rows(positions: Int32Array, size: number): { targets: Float32Array; gates: Float32Array } {
    const targets = new Float32Array(size * this.classes);
    const gates = new Float32Array(size * this.experts);
    for (let b = 0; b < size; b++) {
      const row = this.rowOf.get(positions[b]!);
      if (row === undefined) throw new Error(`no distillation target for position ${positions[b]}`);
      targets.set(
        this.targets.subarray(row * this.classes, (row + 1) * this.classes),
        b * this.classes,
      );
      gates.set(
        this.gates.subarray(row * this.experts, (row + 1) * this.experts),
        b * this.experts,
      );
    }
    return { targets, gates };
  }
}

/**
 * The class `distill` loss for one batch: soft cross-entropy to the teacher's targets (class
 * removed), λ-weighted on forgotten samples, plus μ · KL(old gates ‖ new gates) on retained
 * samples (the router anchor).
 */
function classDistillLoss(
  teacher: Teacher,
  classIndex: number,
  forgottenWeight: number,
  anchorWeight: number,
): (positions: Int32Array, size: number) => TaskLoss {
  return (positions, size) => {
    const { targets, gates } = teacher.rows(positions, size);
    return (logits, labels, routing) => {
      const target = tf.tensor2d(targets, [size, teacher.classes]);
      const perSample = tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1));
      const forgotten = tf.cast(tf.equal(labels, classIndex), 'float32');
      const weight = tf.add(1, tf.mul(forgotten, forgottenWeight - 1));
      const task = tf.mean(tf.mul(perSample, weight)) as tf.Scalar;
      if (anchorWeight === 0) return task;
      const anchor = tf.mean(
        tf.mul(routerKl(gates, teacher.experts, routing.logits), tf.sub(1, forgotten)),
      );
      return tf.add(task, tf.mul(anchor, anchorWeight)) as tf.Scalar;
    };
  };
}

/** Per sample KL(old gates ‖ softmax(router logits)): how far the router moved. */
export function routerKl(
  gates: Float32Array,
  experts: number,
  routerLogits: tf.Tensor2D,
): tf.Tensor1D {
  const old = tf.tensor2d(gates, [gates.length / experts, experts]);
  return tf.sum(
    tf.mul(old, tf.sub(tf.log(tf.add(old, 1e-9)), tf.logSoftmax(routerLogits))),
    1,
  ) as tf.Tensor1D;
}

/**
 * The trainable parts and frozen-expert cache of a targeted retraining of `experts` (and the
 * router): the given cache must have been made for exactly the other experts.
 */
export function targetedParts(
  model: MoEModel,
  experts: readonly number[],
  train: Dataset,
  cache: FrozenExpertCache | undefined,
): { trainable: ModulePart[]; cache: FrozenExpertCache } {
  if (experts.length === 0) throw new Error('targeted forgetting needs at least one expert');
  const trainable: ModulePart[] = ['router', ...experts.map((e) => `expert/${e}` as const)];
  const frozen = new Set(
    Array.from({ length: model.config.experts }, (_, e) => e).filter((e) => !experts.includes(e)),
  );
  const used = cache ?? new FrozenExpertCache(model, frozen, train.size);
  if ([...used.frozen].some((e) => !frozen.has(e)) || used.frozen.size !== frozen.size) {
    throw new Error('the frozen-expert cache was made for other experts');
  }
  return { trainable, cache: used };
}

/**
 * The oracle: a fresh model of the same config (same initial weights), the stored training
 * recipe, only the training positions `indices`.
 */
export async function retrainFresh(
  run: Pick<ForgetRun, 'model' | 'train' | 'normalise' | 'recipe' | 'onStep' | 'signal'>,
  indices: Int32Array,
): Promise<Omit<ForgetOutcome, 'seconds'>> {
  const model = new MoEModel(run.model.config);
  const { recipe } = run;
  try {
    const history = await trainModel(model, {
      epochs: recipe.epochs,
      stepsPerEpoch: Math.floor(indices.length / recipe.batchSize),
      learningRate: recipe.learningRate,
      schedule: recipe.schedule,
      weightDecay: recipe.weightDecay,
      batches: (epoch) =>
        batches(run.train, {
          batchSize: recipe.batchSize,
          seed: recipe.seed,
          epoch,
          shuffle: true,
          dropLast: true,
          normalise: run.normalise,
          indices,
          ...(recipe.augment ? { augment: { crop: 4, flip: true } } : {}),
        }),
      ...(run.onStep ? { onStep: run.onStep } : {}),
      ...(run.signal ? { signal: run.signal } : {}),
    });
    return { model, parts: allParts(model), history, suppressClasses: [] };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

const METHODS: Record<ForgetMethod, MethodImpl> = {
  // Only the experts that saw the class, and the router; frozen experts' logits are cached.
  async targeted(run) {
    const { trainable, cache } = targetedParts(run.model, run.experts, run.train, run.cache);
    const remote = run.remoteExperts;
    const subset = run.retainFraction < 1 ? retainSubset(run) : undefined;
    // Before any step: the targets are the original model's outputs. The pass also fills the
    // frozen experts' cache, which the first epoch would otherwise compute.
    const teacher =
      run.loss === 'distill'
        ? await Teacher.record(
            run,
            subset ?? Int32Array.from({ length: run.train.size }, (_, i) => i),
            cache,
            [run.classIndex],
          )
        : undefined;
    await remote?.prepare(run.model, run.experts);
    const history = await fit(run, run.model, {
      trainable,
      cache,
      ...(remote ? { executor: remote } : {}),
      ...(subset ? { indices: subset } : {}),
      ...(teacher
        ? { batchLoss: classDistillLoss(teacher, run.classIndex, run.lambda, run.anchor) }
        : {}),
      // The subset is half forgotten class: its batch moments would rewrite the statistics the
      // retained classes are normalised with.
      ...(subset ? { frozenBatchNorm: true } : {}),
      // The anchor holds the router to its old gates; the balance and specialization losses
      // would instead refit routing to a subset skewed towards the forgotten class.
      ...(teacher && run.anchor > 0 ? { routingLosses: false } : {}),
      ...(run.loss === 'complement-ce'
        ? { loss: complementObjective(run.classIndex, run.lambda) }
        : {}),
      ...(run.loss === 'random-label'
        ? { mapBatches: (plain, epoch) => relabel(plain, run, epoch) }
        : {}),
    });
    await remote?.collect(run.model, run.experts);
    return {
      model: run.model,
      parts: trainable,
      history,
      suppressClasses: [],
      frozenExpertPasses: cache.stats(),
    };
  },

  // The oracle: a fresh model, the original recipe, the data without the class.
  retrain(run) {
    return retrainFresh(
      run,
      positionsWhere(run.train, (label) => label !== run.classIndex),
    );
  },

  async finetune(run) {
    const indices = positionsWhere(run.train, (label) => label !== run.classIndex);
    const history = await fit(run, run.model, { trainable: allParts(run.model), indices });
    return { model: run.model, parts: allParts(run.model), history, suppressClasses: [] };
  },

  async 'gradient-ascent'(run) {
    const indices = positionsWhere(run.train, (label) => label === run.classIndex);
    const loss: TaskLoss = (logits, labels) => tf.neg(crossEntropy(logits, labels)) as tf.Scalar;
    const history = await fit(run, run.model, { trainable: allParts(run.model), indices, loss });
    return { model: run.model, parts: allParts(run.model), history, suppressClasses: [] };
  },

  async 'random-label'(run) {
    const history = await fit(run, run.model, {
      trainable: allParts(run.model),
      mapBatches: (plain, epoch) => relabel(plain, run, epoch),
    });
    return { model: run.model, parts: allParts(run.model), history, suppressClasses: [] };
  },

  // No training: the class is simply never predicted. The floor every method must beat.
  async mask(run) {
    return { model: run.model, parts: [], history: [], suppressClasses: [run.classIndex] };
  },
};
