import * as tf from '@tensorflow/tfjs-core';
import { type BatchStatistics, updateMovingStatistics } from '../layers/batch-norm';
import { ConvNet } from '../layers/conv-net';
import type { MoEConfig } from '../moe-model';
import { crossEntropy } from '../losses';
import { AdamW, type AdamWState } from '../optim/adamw';
import { getPreset } from '../presets';
import { deserializeParameters, serializeParameters } from '../serialization';

/** What it takes to build one expert exactly as MoEModel builds it. */
export type ExpertSpec = Pick<MoEConfig, 'preset' | 'inputShape' | 'numClasses' | 'seed'>;

/**
 * Expert `expert` of a model, initialised from the same seed and named as inside MoEModel, so a
 * worker's fresh expert and its serialised bytes equal the single-process model's.
 */
export function createExpertNet(spec: ExpertSpec, expert: number): ConvNet {
  const preset = getPreset(spec.preset);
  return new ConvNet(
    `expert${expert}`,
    preset.expert,
    spec.inputShape,
    spec.numClasses,
    spec.seed * 131 + 2 + expert,
  );
}

export interface ExpertStepResult {
  /** L2 norm of the gradient with respect to the expert's trainable weights. */
  gradientNorm: number;
}

/**
 * One expert trained on its own, as a worker hosts it: the coordinator computes the loss from
 * all experts' logits and sends back d(loss)/d(logits); backward turns that into an AdamW step.
 *
 * tfjs cannot keep a gradient tape open across calls, so backward runs the forward pass again
 * under the tape. In training mode batch norm uses the statistics of the batch given, which are
 * the same both times, so the gradient is the one the single-process model computes.
 */
export class ExpertTrainer {
  readonly net: ConvNet;
  private readonly optimizer: AdamW;

  constructor(
    readonly spec: ExpertSpec,
    readonly expert: number,
  ) {
    this.net = createExpertNet(spec, expert);
    this.optimizer = new AdamW({ learningRate: 1e-3 });
  }

  get parameters(): number {
    return this.net.params.countParameters();
  }

  /**
   * Logits [n, C] for images [n, H, W, C]. With `frozenBatchNorm` a training forward normalises
   * with the moving statistics (see ForwardOptions.frozenBatchNorm). The caller disposes the result.
   */
  forward(x: tf.Tensor4D, training: boolean, frozenBatchNorm = false): tf.Tensor2D {
    return tf.tidy(() => this.net.apply(x, training && !frozenBatchNorm));
  }

  /**
   * Back-propagates `logitGradients` [n, C] through the expert on `x` (the images of the
   * training forward it belongs to) and applies one AdamW step.
   */
  backward(
    x: tf.Tensor4D,
    logitGradients: tf.Tensor2D,
    options: { learningRate: number; weightDecay?: number; frozenBatchNorm?: boolean },
  ): ExpertStepResult {
    this.optimizer.weightDecay = options.weightDecay ?? 0;
    this.optimizer.learningRate = options.learningRate;
    const variables = this.net.params.trainable();
    const collect: BatchStatistics[] = [];
    const mode = options.frozenBatchNorm ? 'frozen' : true;
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(this.net.apply(x, mode, collect), logitGradients)),
      variables,
    );
    const gradientNorm = tf.tidy(() =>
      Math.sqrt(tf.addN(variables.map((v) => tf.sum(tf.square(grads[v.name]!)))).dataSync()[0]!),
    );
    this.optimizer.apply(variables.map((v) => [v, grads[v.name]!] as const));
    updateMovingStatistics(collect);
    tf.dispose([value, ...Object.values(grads)]);
    return { gradientNorm };
  }

  /**
   * One AdamW step of the expert alone on cross-entropy: how a SISA shard model trains, on its
   * own shard and without a router. Returns the mean loss.
   */
  trainStep(
    x: tf.Tensor4D,
    labels: tf.Tensor1D,
    options: { learningRate: number; weightDecay?: number },
  ): number {
    this.optimizer.weightDecay = options.weightDecay ?? 0;
    this.optimizer.learningRate = options.learningRate;
    const variables = this.net.params.trainable();
    const collect: BatchStatistics[] = [];
    const { value, grads } = tf.variableGrads(
      () => crossEntropy(this.net.apply(x, true, collect), labels),
      variables,
    );
    this.optimizer.apply(variables.map((v) => [v, grads[v.name]!] as const));
    updateMovingStatistics(collect);
    const loss = value.dataSync()[0]!;
    tf.dispose([value, ...Object.values(grads)]);
    return loss;
  }

  /** The expert's weights as libs/model serialises them (the same bytes as in a saved model). */
  serializeWeights(): Uint8Array {
    return serializeParameters(this.net.params, { part: `expert/${this.expert}` });
  }

  loadWeights(bytes: Uint8Array): void {
    deserializeParameters(this.net.params, bytes);
  }

  serializeOptimizer(): Uint8Array {
    return encodeOptimizerState(this.optimizer.exportState(this.net.params.trainable()));
  }

  loadOptimizer(bytes: Uint8Array): void {
    this.optimizer.importState(this.net.params.trainable(), decodeOptimizerState(bytes));
  }

  /** Optimizer steps applied so far (restored from a checkpoint with loadOptimizer). */
  get optimizerSteps(): number {
    return this.optimizer.iterations;
  }

  dispose(): void {
    this.optimizer.dispose();
    this.net.dispose();
  }
}

const OPTIMIZER_MAGIC = 'LETHEO01';

/** 8-byte magic, uint32 step count, uint32 variable count, then per variable uint32 size, m, v. */
export function encodeOptimizerState(state: AdamWState): Uint8Array {
  const floats = state.moments.reduce((n, { m }) => n + 2 * m.length, 0);
  const bytes = new Uint8Array(16 + 4 * state.moments.length + 4 * floats);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(OPTIMIZER_MAGIC), 0);
  view.setUint32(8, state.steps, true);
  view.setUint32(12, state.moments.length, true);
  let offset = 16;
  for (const { m, v } of state.moments) {
    view.setUint32(offset, m.length, true);
    offset += 4;
    for (const values of [m, v]) {
      for (let i = 0; i < values.length; i++, offset += 4)
        view.setFloat32(offset, values[i]!, true);
    }
  }
  return bytes;
}

export function decodeOptimizerState(bytes: Uint8Array): AdamWState {
  const fail = (why: string): never => {
    throw new Error(`malformed optimizer state: ${why}`);
  };
  if (bytes.length < 16) fail('too short');
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== OPTIMIZER_MAGIC) fail('bad magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const steps = view.getUint32(8, true);
  const count = view.getUint32(12, true);
  let offset = 16;
  const moments: AdamWState['moments'] = [];
  for (let k = 0; k < count; k++) {
    if (offset + 4 > bytes.length) fail('truncated');
    const size = view.getUint32(offset, true);
    offset += 4;
    if (offset + 8 * size > bytes.length) fail('truncated');
    const read = (): Float32Array => {
      const values = new Float32Array(size);
      for (let i = 0; i < size; i++, offset += 4) values[i] = view.getFloat32(offset, true);
      return values;
    };
    const m = read();
    moments.push({ m, v: read() });
  }
  if (offset !== bytes.length) fail('trailing bytes');
  return { steps, moments };
}
