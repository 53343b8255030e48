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
   * for speed.
   */
  retainFraction: number;
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

/** Every forgotten sample plus a seeded `retainFraction` of the retained ones, in position order. */
function retainSubset(run: ForgetRun): Int32Array {
  const forgotten = positionsWhere(run.train, (label) => label === run.classIndex);
  const retained = positionsWhere(run.train, (label) => label !== run.classIndex);
  const keep = Math.max(1, Math.round(retained.length * run.retainFraction));
  const picked = createRng(deriveSeed(run.seed, 'retain-subset')).shuffle(retained).slice(0, keep);
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

  private constructor(
    /** One row of targets per position trained on, in the order of `positions`. */
    private readonly targets: Float32Array,
    positions: Int32Array,
    private readonly classIndex: number,
    private readonly forgottenWeight: number,
  ) {
    this.classes = targets.length / Math.max(1, positions.length);
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
      const probs = tf.tidy(() => {
        const x = batchToTensor(model, batch);
        const { logits } = model.forward(x, {
          ...(cache ? { expertLogits: cache.provider(x, batch.positions) } : {}),
          suppressClasses: [classIndex],
        });
        return tf.softmax(logits).dataSync() as Float32Array;
      });
      // Unshuffled batches over `positions` visit them in order.
      targets.set(probs.subarray(0, batch.size * classes), row * classes);
      row += batch.size;
    }
    return new Teacher(targets, positions, classIndex, run.lambda);
  }

  /** The loss for one batch: soft cross-entropy to the targets, λ-weighted on forgotten samples. */
  loss(positions: Int32Array, size: number): TaskLoss {
    const rows = new Float32Array(size * this.classes);
    for (let b = 0; b < size; b++) {
      const row = this.rowOf.get(positions[b]!);
      if (row === undefined) throw new Error(`no distillation target for position ${positions[b]}`);
      rows.set(
        this.targets.subarray(row * this.classes, (row + 1) * this.classes),
        b * this.classes,
      );
    }
    return (logits, labels) => {
      const target = tf.tensor2d(rows, [size, this.classes]);
      const perSample = tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1));
      const forgotten = tf.cast(tf.equal(labels, this.classIndex), 'float32');
      const weight = tf.add(1, tf.mul(forgotten, this.forgottenWeight - 1));
      return tf.mean(tf.mul(perSample, weight)) as tf.Scalar;
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
    const cache = new FrozenExpertCache(run.model, frozen, run.train.size);
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
