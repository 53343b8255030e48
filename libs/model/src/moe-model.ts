import * as tf from '@tensorflow/tfjs-core';
import { type BatchStatistics, type LayerMode, updateMovingStatistics } from './layers/batch-norm';
import { ConvNet } from './layers/conv-net';
import { crossEntropy } from './losses';
import { AdamW, type AdamWState } from './optim/adamw';
import { loadBalancingLoss, routeTopK, type Routing, specializationLoss } from './gating';
import { getPreset } from './presets';

export interface MoEConfig {
  preset: string;
  experts: number;
  topK: number;
  numClasses: number;
  inputShape: [number, number, number];
  /** Std-dev of the Gaussian noise added to router logits while training (noisy top-k). */
  routerNoise: number;
  /**
   * α of the load-balancing loss. 0.1, not Switch's 0.01: on CIFAR-10 at 0.01 the router
   * collapsed onto two of four experts for every class within three epochs; at 0.1 load is
   * balanced and routing follows the classes (vehicles vs animals).
   */
  balanceWeight: number;
  /**
   * β of the class–expert mutual-information loss (see specializationLoss); 0 turns it off.
   * Absent in models trained before it existed, which trained without it.
   */
  specializeWeight?: number;
  seed: number;
}

/** Chosen by measurement: docs/routing.md. */
export const DEFAULT_SPECIALIZE_WEIGHT = 2;
/**
 * Std-dev of the router-logit noise while training. 0.5 rather than the Switch-style 1: at
 * 10,000 CIFAR-10 images (docs/routing.md) noise 1 cost 2.5 points of accuracy against 0
 * and noise 0 let an expert fall below half its fair share; 0.5 kept every expert busy.
 */
export const DEFAULT_ROUTER_NOISE = 0.5;

/** The largest accepted β: beyond it the MI term swamps the task loss. */
export const MAX_SPECIALIZE_WEIGHT = 100;

export const DEFAULT_MOE_CONFIG: Omit<MoEConfig, 'numClasses'> = {
  preset: 'small',
  experts: 4,
  topK: 2,
  inputShape: [32, 32, 3],
  routerNoise: DEFAULT_ROUTER_NOISE,
  balanceWeight: 0.1,
  specializeWeight: DEFAULT_SPECIALIZE_WEIGHT,
  seed: 0,
};

/** Identifies a separately stored part of the model. */
export type ModulePart = 'router' | `expert/${number}`;

export interface ForwardResult {
  /** [B, C] Σ over the chosen k of gateᵢ · expertᵢ(x). */
  logits: tf.Tensor2D;
  routing: Routing;
}

/**
 * Returns an expert's logits [n, C] for the given batch positions (the samples routed to it),
 * or undefined to run the expert.
 */
export type ExpertLogitsProvider = (
  expert: number,
  positions: Int32Array,
) => tf.Tensor2D | undefined;

/**
 * The task part of the training objective; the routing losses (balance, specialization) are
 * added unless TrainOptions.routingLosses is false. `routing` lets a loss anchor the router.
 */
export type TaskLoss = (logits: tf.Tensor2D, labels: tf.Tensor1D, routing: Routing) => tf.Scalar;

export interface ForwardOptions {
  training?: boolean;
  trainable?: ReadonlySet<ModulePart>;
  /**
   * Training, but every batch norm normalises with its moving statistics and leaves them alone:
   * for fine-tuning on a small or skewed subset, whose batch moments are not the data's.
   */
  frozenBatchNorm?: boolean;
  collect?: BatchStatistics[];
  /**
   * Supplies logits for some experts instead of running them. A frozen expert's outputs never
   * change, so forgetting computes each (expert, sample) pair at most once, and only for samples
   * actually routed there.
   */
  expertLogits?: ExpertLogitsProvider;
  /** Classes the output never predicts (their logits are pushed to −1e9), as a server would. */
  suppressClasses?: readonly number[];
  /**
   * Seed of the router noise. Expert parallelism routes a batch, gathers the experts' logits
   * from workers and then runs the router again under the gradient tape; both passes must draw
   * the same noise to pick the same experts.
   */
  noiseSeed?: number;
}

export interface StepResult {
  loss: number;
  /** The task loss (cross-entropy unless a TaskLoss was given). */
  taskLoss: number;
  balance: number;
  /** Class–expert mutual information of the batch's routing, in nats (0 when not computed). */
  specialization: number;
  correct: number;
  size: number;
  /** Samples routed to each expert in this step. */
  expertLoad: number[];
  /** [B * k] the experts each sample was routed to, sample-major (Routing.chosen). */
  chosen: Int32Array;
  /**
   * d(loss)/d(logits) of each external expert (see TrainOptions.externalExperts), rows in the
   * order of its batch positions, row-major [n, C].
   */
  expertLogitGradients?: Map<number, Float32Array>;
}

export interface TrainOptions {
  learningRate: number;
  /** Replaces cross-entropy, e.g. to add an unlearning term on forgotten samples. */
  loss?: TaskLoss;
  expertLogits?: ExpertLogitsProvider;
  weightDecay?: number;
  /** Parts whose weights the step may change; the rest are frozen (inference-mode batch norm). */
  trainable?: ReadonlySet<ModulePart>;
  /**
   * Experts that run elsewhere (on workers): their logits [n, C] for the samples routed to them,
   * in batch-position order. The step treats them as inputs and returns the loss gradient with
   * respect to each in StepResult.expertLogitGradients; it updates only local parts.
   */
  externalExperts?: ReadonlyMap<number, tf.Tensor2D>;
  noiseSeed?: number;
  /** See ForwardOptions.frozenBatchNorm. */
  frozenBatchNorm?: boolean;
  /**
   * Add the balance and specialization losses (default true). Forgetting turns them off: its
   * subset is skewed towards one class, and it anchors the router to its old gates instead.
   */
  routingLosses?: boolean;
}

/**
 * Everything besides the weights that a training run carries from one step to the next: with
 * the weights of every part, what resumes a run exactly where it stopped (see
 * MoEModel.exportTrainingState and TrainingRun.startEpoch).
 */
export interface MoETrainingState {
  /** AdamW's moments of the parts' trainable variables, in part order, and its step count. */
  optimizer: AdamWState;
  weightDecay: number;
  /** Router-noise draws of in-process steps so far: the next one is seeded from it. */
  noiseStep: number;
}

let externalId = 0;

/**
 * A sparse Mixture-of-Experts classifier: a CNN router picks k of E CNN experts per image, and
 * the output is the gate-weighted sum of the chosen experts' logits. Each expert runs only on the
 * samples routed to it.
 */
export class MoEModel {
  readonly router: ConvNet;
  readonly experts: ConvNet[];
  private optimizer: AdamW | undefined;
  private noiseStep = 0;

  constructor(readonly config: MoEConfig) {
    validateConfig(config);
    const preset = getPreset(config.preset);
    const base = config.seed * 131;
    this.router = new ConvNet('router', preset.router, config.inputShape, config.experts, base + 1);
    this.experts = Array.from(
      { length: config.experts },
      (_, e) =>
        new ConvNet(
          `expert${e}`,
          preset.expert,
          config.inputShape,
          config.numClasses,
          base + 2 + e,
        ),
    );
  }

  static parts(experts: number): ModulePart[] {
    return ['router', ...Array.from({ length: experts }, (_, e) => `expert/${e}` as const)];
  }

  part(name: ModulePart): ConvNet {
    if (name === 'router') return this.router;
    const e = Number(name.slice('expert/'.length));
    const net = this.experts[e];
    if (!net) throw new Error(`no ${name}: the model has ${this.experts.length} experts`);
    return net;
  }

  /**
   * Runs router and experts. Call inside tf.tidy (or a gradient function): the returned tensors
   * and intermediates belong to the caller's scope.
   */
  forward(x: tf.Tensor4D, options: ForwardOptions = {}): ForwardResult {
    const training = options.training ?? false;
    const isTraining = (part: ModulePart): LayerMode =>
      training &&
      (options.trainable === undefined || options.trainable.has(part)) &&
      (options.frozenBatchNorm ? 'frozen' : true);
    const batch = x.shape[0];
    const cleanLogits = this.router.apply(x, isTraining('router'), options.collect);
    let routerLogits = cleanLogits;
    if (training && this.config.routerNoise > 0) {
      const noise = tf.randomNormal(
        routerLogits.shape,
        0,
        this.config.routerNoise,
        'float32',
        options.noiseSeed ?? this.config.seed * 7_919 + ++this.noiseStep,
      );
      routerLogits = tf.add(routerLogits, noise);
    }
    const routing = { ...routeTopK(routerLogits, this.config.topK), logits: cleanLogits };
    let logits: tf.Tensor2D = tf.zeros([batch, this.config.numClasses]);
    this.experts.forEach((expert, e) => {
      const positions = routing.assignments[e]!;
      if (positions.length === 0) return;
      const gate = tf.slice(routing.gates, [0, e], [batch, 1]);
      const indices = tf.tensor1d(positions, 'int32');
      const expertLogits =
        options.expertLogits?.(e, positions) ??
        expert.apply(
          positions.length === batch ? x : tf.gather(x, indices),
          isTraining(`expert/${e}`),
          options.collect,
        );
      // Back to batch order through a one-hot dispatch matrix [n, B]: its transpose product
      // has a matMul gradient on every backend, whereas scatterND has none in tfjs and
      // gather's needs UnsortedSegmentSum.
      const full =
        positions.length === batch
          ? expertLogits
          : tf.matMul(tf.oneHot(indices, batch), expertLogits, true, false);
      logits = tf.add(logits, tf.mul(full, gate));
    });
    if (options.suppressClasses?.length) {
      const mask = new Float32Array(this.config.numClasses);
      for (const c of options.suppressClasses) mask[c] = -1e9;
      logits = tf.add(logits, tf.tensor1d(mask));
    }
    return { logits, routing };
  }

  /** Class logits for a batch, in inference mode. The caller disposes the result. */
  predict(x: tf.Tensor4D, options: Pick<ForwardOptions, 'suppressClasses'> = {}): tf.Tensor2D {
    return tf.tidy(() => this.forward(x, options).logits);
  }

  /**
   * Which experts each sample of the batch goes to, without running any expert: the first half
   * of an expert-parallel step. In training mode the router uses batch statistics (without
   * updating its moving averages) and noise drawn from `noiseSeed`, as the step that follows will.
   */
  route(
    x: tf.Tensor4D,
    options: { training?: boolean; noiseSeed?: number; frozenBatchNorm?: boolean } = {},
  ): Int32Array[] {
    return tf.tidy(() => {
      const training = options.training ?? false;
      let routerLogits = this.router.apply(x, training && !options.frozenBatchNorm);
      if (training && this.config.routerNoise > 0) {
        routerLogits = tf.add(
          routerLogits,
          tf.randomNormal(
            routerLogits.shape,
            0,
            this.config.routerNoise,
            'float32',
            options.noiseSeed ?? this.config.seed * 7_919 + this.noiseStep + 1,
          ),
        );
      }
      return routeTopK(routerLogits, this.config.topK).assignments;
    });
  }

  /** One expert's logits [B, C] on every sample of the batch, in inference mode. */
  expertLogits(expert: number, x: tf.Tensor4D): tf.Tensor2D {
    const net = this.part(`expert/${expert}`);
    return tf.tidy(() => net.apply(x, false));
  }

  /**
   * The model's internals for a batch, before any gating or output mask: the router's
   * penultimate features, then every expert's logits — what a feature probe reads to test
   * whether forgetting left a class recognisable inside the model.
   */
  internalFeatures(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() =>
      tf.concat([this.router.features(x, false), ...this.experts.map((e) => e.apply(x, false))], 1),
    );
  }

  /** One optimisation step on a batch of images [B, H, W, C] and integer labels [B]. */
  trainStep(x: tf.Tensor4D, labels: tf.Tensor1D, options: TrainOptions): StepResult {
    const optimizer = (this.optimizer ??= new AdamW({
      learningRate: options.learningRate,
      weightDecay: options.weightDecay ?? 0,
    }));
    optimizer.learningRate = options.learningRate;
    const external = options.externalExperts ?? new Map<number, tf.Tensor2D>();
    const trainable =
      external.size > 0
        ? new Set<ModulePart>(
            [...(options.trainable ?? MoEModel.parts(this.config.experts))].filter(
              (p) => p === 'router' || !external.has(Number(p.slice('expert/'.length))),
            ),
          )
        : options.trainable;
    const variables = MoEModel.parts(this.config.experts)
      .filter((p) => !trainable || trainable.has(p))
      .flatMap((p) => this.part(p).params.trainable());
    // External logits enter the tape as variables so that variableGrads returns their gradient.
    const inputs = new Map(
      [...external].map(([e, t]) => [e, tf.variable(t, true, `external-logits/${externalId++}`)]),
    );
    const expertLogits: ExpertLogitsProvider | undefined =
      inputs.size > 0
        ? (e, positions) => {
            const input = inputs.get(e);
            if (input && input.shape[0] !== positions.length) {
              throw new Error(
                `expert ${e}: ${input.shape[0]} external logit rows for ${positions.length} routed samples`,
              );
            }
            return (input as tf.Tensor2D | undefined) ?? options.expertLogits?.(e, positions);
          }
        : options.expertLogits;
    const collect: BatchStatistics[] = [];
    let kept:
      | { logits: tf.Tensor2D; task: tf.Scalar; balance: tf.Scalar; specialization: tf.Scalar }
      | undefined;
    let load: number[] = [];
    let chosen: Int32Array = new Int32Array(0);
    const routingLosses = options.routingLosses ?? true;
    const beta = this.config.specializeWeight ?? 0;
    const { value, grads } = tf.variableGrads(() => {
      const { logits, routing } = this.forward(x, {
        training: true,
        trainable,
        collect,
        ...(options.frozenBatchNorm ? { frozenBatchNorm: true } : {}),
        ...(expertLogits ? { expertLogits } : {}),
        ...(options.noiseSeed === undefined ? {} : { noiseSeed: options.noiseSeed }),
      });
      const task = (options.loss ?? crossEntropy)(logits, labels, routing);
      const balance = routingLosses
        ? loadBalancingLoss(routing, this.config.balanceWeight)
        : tf.scalar(0);
      const specialization =
        routingLosses && beta > 0
          ? specializationLoss(routing, labels, this.config.numClasses, beta)
          : { loss: tf.scalar(0), mutualInformation: tf.scalar(0) };
      kept = {
        logits: tf.keep(logits),
        task: tf.keep(task),
        balance: tf.keep(balance),
        specialization: tf.keep(specialization.mutualInformation),
      };
      load = routing.assignments.map((a) => a.length);
      chosen = routing.chosen;
      return tf.addN([task, balance, specialization.loss]) as tf.Scalar;
    }, [...variables, ...inputs.values()]);
    const expertLogitGradients = new Map<number, Float32Array>();
    for (const [e, input] of inputs) {
      const grad = grads[input.name];
      expertLogitGradients.set(
        e,
        grad ? (grad.dataSync() as Float32Array).slice() : new Float32Array(input.size),
      );
      input.dispose();
    }
    optimizer.apply(
      variables.filter((v) => grads[v.name]).map((v) => [v, grads[v.name]!] as const),
    );
    updateMovingStatistics(collect);
    const result = kept!;
    const correct = tf.tidy(
      () => tf.sum(tf.cast(tf.equal(tf.argMax(result.logits, 1), labels), 'int32')).dataSync()[0]!,
    );
    const step: StepResult = {
      loss: value.dataSync()[0]!,
      taskLoss: result.task.dataSync()[0]!,
      balance: result.balance.dataSync()[0]!,
      specialization: result.specialization.dataSync()[0]!,
      correct,
      size: x.shape[0],
      expertLoad: load,
      chosen,
      ...(inputs.size > 0 ? { expertLogitGradients } : {}),
    };
    tf.dispose([value, result.logits, result.task, result.balance, result.specialization]);
    tf.dispose(Object.values(grads));
    return step;
  }

  /**
   * The optimiser state of `parts` (zeros before the first step) and the router-noise position:
   * with the weights, what a checkpoint needs to continue the run bit for bit.
   */
  exportTrainingState(
    parts: readonly ModulePart[] = MoEModel.parts(this.config.experts),
  ): MoETrainingState {
    const variables = parts.flatMap((p) => this.part(p).params.trainable());
    const optimizer = this.optimizer ?? new AdamW({ learningRate: 0 });
    try {
      return {
        optimizer: optimizer.exportState(variables),
        weightDecay: optimizer.weightDecay,
        noiseStep: this.noiseStep,
      };
    } finally {
      if (optimizer !== this.optimizer) optimizer.dispose();
    }
  }

  /**
   * Restores what exportTrainingState returned for the same parts (the weights are loaded
   * separately). @throws Error when the state does not fit the parts; the model is unchanged then.
   */
  importTrainingState(parts: readonly ModulePart[], state: MoETrainingState): void {
    if (!Number.isInteger(state.noiseStep) || state.noiseStep < 0) {
      throw new Error(`training state: noise step must be an integer ≥ 0, got ${state.noiseStep}`);
    }
    const variables = parts.flatMap((p) => this.part(p).params.trainable());
    const optimizer = new AdamW({ learningRate: 0, weightDecay: state.weightDecay });
    try {
      optimizer.importState(variables, state.optimizer);
    } catch (error) {
      optimizer.dispose();
      throw new Error(
        `training state does not fit ${parts.join(', ')}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    this.optimizer?.dispose();
    this.optimizer = optimizer;
    this.noiseStep = state.noiseStep;
  }

  /** Starts the next training step with fresh optimiser state (e.g. before forgetting). */
  resetOptimizer(): void {
    this.optimizer?.dispose();
    this.optimizer = undefined;
  }

  countParameters(): { router: number; expert: number; total: number } {
    const router = this.router.params.countParameters();
    const expert = this.experts[0]!.params.countParameters();
    return { router, expert, total: router + expert * this.experts.length };
  }

  dispose(): void {
    this.optimizer?.dispose();
    this.router.dispose();
    for (const e of this.experts) e.dispose();
  }
}

function validateConfig(config: MoEConfig): void {
  const fail = (msg: string): never => {
    throw new Error(`invalid model config: ${msg}`);
  };
  if (!Number.isInteger(config.experts) || config.experts < 1)
    fail(`experts must be ≥ 1, got ${config.experts}`);
  if (!Number.isInteger(config.topK) || config.topK < 1 || config.topK > config.experts) {
    fail(`top-k must be between 1 and experts (${config.experts}), got ${config.topK}`);
  }
  if (!Number.isInteger(config.numClasses) || config.numClasses < 2)
    fail(`numClasses must be ≥ 2, got ${config.numClasses}`);
  if (!Number.isInteger(config.seed)) fail(`seed must be an integer, got ${config.seed}`);
  const beta = config.specializeWeight ?? 0;
  if (!(Number.isFinite(beta) && beta >= 0 && beta <= MAX_SPECIALIZE_WEIGHT)) {
    fail(`specialize weight must be a number in [0, ${MAX_SPECIALIZE_WEIGHT}], got ${beta}`);
  }
  if (!(Number.isFinite(config.balanceWeight) && config.balanceWeight >= 0)) {
    fail(`balance weight must be a finite number ≥ 0, got ${config.balanceWeight}`);
  }
  if (!(Number.isFinite(config.routerNoise) && config.routerNoise >= 0)) {
    fail(`router noise must be a finite number ≥ 0, got ${config.routerNoise}`);
  }
}
