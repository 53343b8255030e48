import * as tf from '@tensorflow/tfjs-core';
import { batches, type ChannelStats, createRng, type Dataset, deriveSeed } from '@lethe/data';
import {
  type ArrayBatch,
  batchToTensor,
  crossEntropy,
  type EpochSummary,
  type ModulePart,
  MoEModel,
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

export const FORGET_METHODS = [
  'targeted',
  'retrain',
  'finetune',
  'gradient-ascent',
  'random-label',
  'mask',
] as const;
export type ForgetMethod = (typeof FORGET_METHODS)[number];

export const UNLEARNING_LOSSES = ['complement-ce', 'random-label', 'distill'] as const;
export type UnlearningLoss = (typeof UNLEARNING_LOSSES)[number];

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

function epochBatches(run: ForgetRun, epoch: number, indices?: Int32Array): Iterable<ArrayBatch> {
  return batches(run.train, {
    batchSize: run.batchSize,
    seed: deriveSeed(run.seed, 'forget'),
    epoch,
    shuffle: true,
    normalise: run.normalise,
    ...(indices ? { indices } : {}),
  });
}

async function fit(
  run: ForgetRun,
  model: MoEModel,
  options: {
    trainable: ModulePart[];
    indices?: Int32Array;
    loss?: TaskLoss;
    relabelForgotten?: boolean;
    cache?: FrozenExpertCache;
    executor?: StepExecutor;
    teacher?: Teacher;
    frozenBatchNorm?: boolean;
    routingLosses?: boolean;
  },
): Promise<EpochSummary[]> {
  const size = options.indices?.length ?? run.train.size;
  model.resetOptimizer();
  return trainModel(model, {
    epochs: run.epochs,
    stepsPerEpoch: Math.ceil(size / run.batchSize),
    learningRate: run.learningRate,
    schedule: 'constant',
    trainable: new Set(options.trainable),
    ...(options.frozenBatchNorm ? { frozenBatchNorm: true } : {}),
    ...(options.routingLosses === false ? { routingLosses: false } : {}),
    batches: (epoch) => {
      const plain = epochBatches(run, epoch, options.indices);
      return options.relabelForgotten ? relabel(plain, run, epoch) : plain;
    },
    perBatch: (batch, x) => ({
      ...(options.loss ? { loss: options.loss } : {}),
      ...(options.teacher && batch.positions
        ? { loss: options.teacher.loss(batch.positions, batch.size) }
        : {}),
      ...(options.cache && batch.positions
        ? { expertLogits: options.cache.provider(x, batch.positions) }
        : {}),
    }),
    ...(run.onStep ? { onStep: run.onStep } : {}),
    ...(run.signal ? { signal: run.signal } : {}),
    ...(options.executor ? { executor: options.executor } : {}),
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
  const forgotten = positionsWhere(run.train, (label) => label === run.classIndex);
  const retained = positionsWhere(run.train, keepRetained);
  const budget = Math.max(1, Math.round(retained.length * run.retainFraction));
  const rng = createRng(deriveSeed(run.seed, 'retain-subset'));
  if (!run.routing)
    return Int32Array.from([...forgotten, ...rng.shuffle(retained).slice(0, budget)]).sort();
  const routed = routedTo(run.routing, run.train, run.experts, keepRetained);
  const isRouted = new Uint8Array(run.train.size);
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
 * The `distill` objective's targets: what the model said before forgetting, with the class
 * taken out and the rest renormalised — p(y | x, y ≠ c), the answer of a model that never had
 * class c, as far as this model can tell. On retained samples it keeps their outputs (rather than
 * refitting hard labels on a small retained subset); on forgotten samples it moves the class's
 * probability to the classes the model confused it with, not to a random or uniform one.
 */
class Teacher {
  /** Dataset position → its row in `targets`. */
  private readonly rowOf = new Map<number, number>();
  private readonly classes: number;

  private readonly experts: number;

  private constructor(
    /** One row of targets per position trained on, in the order of `positions`. */
    private readonly targets: Float32Array,
    /** The router's softmax per position before forgetting, rows as `targets`. */
    private readonly gates: Float32Array,
    positions: Int32Array,
    private readonly classIndex: number,
    private readonly forgottenWeight: number,
    private readonly anchorWeight: number,
  ) {
    this.classes = targets.length / Math.max(1, positions.length);
    this.experts = gates.length / Math.max(1, positions.length);
    positions.forEach((p, row) => this.rowOf.set(p, row));
  }

  /** Runs the model, as it is before any step, over `positions` (inference mode). */
  static async record(
    run: ForgetRun,
    positions: Int32Array,
    cache: FrozenExpertCache | undefined,
  ): Promise<Teacher> {
    const { model, classIndex } = run;
    const classes = model.config.numClasses;
    const targets = new Float32Array(positions.length * classes);
    const experts = model.config.experts;
    const gates = new Float32Array(positions.length * experts);
    let row = 0;
    for (const batch of batches(run.train, {
      batchSize: 256,
      shuffle: false,
      normalise: run.normalise,
      indices: positions,
    })) {
      // A pass over a large training set takes minutes: let the process serve (a coordinator's
      // gRPC calls) and a cancelled job stop between batches.
      await new Promise((resolve) => setImmediate(resolve));
      if (run.signal?.aborted) throw new Error('forgetting cancelled');
      const [probs, routerProbs] = tf.tidy(() => {
        const x = batchToTensor(model, batch);
        const { logits, routing } = model.forward(x, {
          ...(cache ? { expertLogits: cache.provider(x, batch.positions) } : {}),
          suppressClasses: [classIndex],
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
    return new Teacher(targets, gates, positions, classIndex, run.lambda, run.anchor);
  }

  /**
   * The loss for one batch: soft cross-entropy to the targets, λ-weighted on forgotten samples,
   * plus μ · KL(old gates ‖ new gates) on retained samples (the router anchor).
   */
  loss(positions: Int32Array, size: number): TaskLoss {
    const rows = new Float32Array(size * this.classes);
    const gateRows = new Float32Array(size * this.experts);
    for (let b = 0; b < size; b++) {
      const row = this.rowOf.get(positions[b]!);
      if (row === undefined) throw new Error(`no distillation target for position ${positions[b]}`);
      rows.set(
        this.targets.subarray(row * this.classes, (row + 1) * this.classes),
        b * this.classes,
      );
      gateRows.set(
        this.gates.subarray(row * this.experts, (row + 1) * this.experts),
        b * this.experts,
      );
    }
    return (logits, labels, routing) => {
      const target = tf.tensor2d(rows, [size, this.classes]);
      const perSample = tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1));
      const forgotten = tf.cast(tf.equal(labels, this.classIndex), 'float32');
      const weight = tf.add(1, tf.mul(forgotten, this.forgottenWeight - 1));
      const task = tf.mean(tf.mul(perSample, weight)) as tf.Scalar;
      if (this.anchorWeight === 0) return task;
      const old = tf.tensor2d(gateRows, [size, this.experts]);
      const kl = tf.sum(
        tf.mul(old, tf.sub(tf.log(tf.add(old, 1e-9)), tf.logSoftmax(routing.logits))),
        1,
      );
      const anchor = tf.mean(tf.mul(kl, tf.sub(1, forgotten)));
      return tf.add(task, tf.mul(anchor, this.anchorWeight)) as tf.Scalar;
    };
  }
}

const METHODS: Record<ForgetMethod, MethodImpl> = {
  // Only the experts that saw the class, and the router; frozen experts' logits are cached.
  async targeted(run) {
    if (run.experts.length === 0) throw new Error('targeted forgetting needs at least one expert');
    const trainable: ModulePart[] = ['router', ...run.experts.map((e) => `expert/${e}` as const)];
    const frozen = new Set(
      Array.from({ length: run.model.config.experts }, (_, e) => e).filter(
        (e) => !run.experts.includes(e),
      ),
    );
    const cache = run.cache ?? new FrozenExpertCache(run.model, frozen, run.train.size);
    if ([...cache.frozen].some((e) => !frozen.has(e)) || cache.frozen.size !== frozen.size) {
      throw new Error('the frozen-expert cache was made for other experts');
    }
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
          )
        : undefined;
    await remote?.prepare(run.model, run.experts);
    const history = await fit(run, run.model, {
      trainable,
      cache,
      ...(remote ? { executor: remote } : {}),
      ...(subset ? { indices: subset } : {}),
      ...(teacher ? { teacher } : {}),
      // The subset is half forgotten class: its batch moments would rewrite the statistics the
      // retained classes are normalised with.
      ...(subset ? { frozenBatchNorm: true } : {}),
      // The anchor holds the router to its old gates; the balance and specialization losses
      // would instead refit routing to a subset skewed towards the forgotten class.
      ...(teacher && run.anchor > 0 ? { routingLosses: false } : {}),
      ...(run.loss === 'complement-ce'
        ? { loss: complementObjective(run.classIndex, run.lambda) }
        : {}),
      ...(run.loss === 'random-label' ? { relabelForgotten: true } : {}),
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
  async retrain(run) {
    const model = new MoEModel(run.model.config);
    const indices = positionsWhere(run.train, (label) => label !== run.classIndex);
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
      relabelForgotten: true,
    });
    return { model: run.model, parts: allParts(run.model), history, suppressClasses: [] };
  },

  // No training: the class is simply never predicted. The floor every method must beat.
  async mask(run) {
    return { model: run.model, parts: [], history: [], suppressClasses: [run.classIndex] };
  },
};
