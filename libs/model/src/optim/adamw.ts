import * as tf from '@tensorflow/tfjs-core';

export interface AdamWConfig {
  learningRate: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Decoupled weight decay (Loshchilov & Hutter), applied only where `decays` says so. */
  weightDecay?: number;
}

/** Backends whose tensors live in host memory, where reading them is free of device syncs. */
const HOST_BACKENDS = new Set(['wasm', 'cpu']);

/** AdamW's state for a list of variables: first and second moments, and the step count. */
export interface AdamWState {
  steps: number;
  moments: { m: Float32Array; v: Float32Array }[];
}

interface Moments {
  m: tf.Variable;
  v: tf.Variable;
}

/**
 * AdamW with a settable learning rate and inspectable state.
 *
 * tfjs-core's AdamOptimizer hides its learning rate (no schedules) and keys state by global
 * variable names; a worker that checkpoints one expert needs that expert's moments alone.
 */
export class AdamW {
  learningRate: number;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  /** Settable, like the learning rate: a worker gets both with every step. */
  weightDecay: number;
  private readonly moments = new Map<tf.Variable, Moments>();
  private readonly hostMoments = new Map<tf.Variable, { m: Float32Array; v: Float32Array }>();
  private steps = 0;

  constructor(
    config: AdamWConfig,
    private readonly decays: (v: tf.Variable) => boolean = (v) => v.name.endsWith('/kernel'),
  ) {
    this.learningRate = config.learningRate;
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.999;
    this.epsilon = config.epsilon ?? 1e-8;
    this.weightDecay = config.weightDecay ?? 0;
  }

  get iterations(): number {
    return this.steps;
  }

  /** Applies one update; `grads` pairs each variable with its gradient. Disposes nothing it is given. */
  apply(grads: ReadonlyArray<readonly [tf.Variable, tf.Tensor]>): void {
    this.steps++;
    const t = this.steps;
    const correction1 = 1 - this.beta1 ** t;
    const correction2 = 1 - this.beta2 ** t;
    const stepSize = (this.learningRate * Math.sqrt(correction2)) / correction1;
    if (HOST_BACKENDS.has(tf.getBackend())) {
      this.applyOnHost(grads, stepSize);
      return;
    }
    tf.tidy(() => {
      for (const [variable, grad] of grads) {
        let state = this.moments.get(variable);
        if (!state) {
          state = {
            m: tf.variable(tf.zerosLike(variable), false),
            v: tf.variable(tf.zerosLike(variable), false),
          };
          this.moments.set(variable, state);
        }
        const m = tf.add(tf.mul(state.m, this.beta1), tf.mul(grad, 1 - this.beta1));
        const v = tf.add(tf.mul(state.v, this.beta2), tf.mul(tf.square(grad), 1 - this.beta2));
        state.m.assign(m);
        state.v.assign(v);
        let next = tf.sub(variable, tf.mul(tf.div(m, tf.add(tf.sqrt(v), this.epsilon)), stepSize));
        if (this.weightDecay > 0 && this.decays(variable)) {
          next = tf.sub(next, tf.mul(variable, this.learningRate * this.weightDecay));
        }
        variable.assign(next);
      }
    });
  }

  /**
   * The same update as plain loops over the values. On the wasm and cpu backends tensors live in
   * host memory, and the ~12 element-wise ops per variable cost more in per-op overhead (~700
   * kernel calls per step for the `small` MoE) than the arithmetic itself.
   */
  private applyOnHost(
    grads: ReadonlyArray<readonly [tf.Variable, tf.Tensor]>,
    stepSize: number,
  ): void {
    const { beta1, beta2, epsilon } = this;
    const decayStep = this.learningRate * this.weightDecay;
    for (const [variable, grad] of grads) {
      let state = this.hostMoments.get(variable);
      if (!state) {
        state = { m: new Float32Array(variable.size), v: new Float32Array(variable.size) };
        this.hostMoments.set(variable, state);
      }
      const { m, v } = state;
      const g = grad.dataSync() as Float32Array;
      const w = Float32Array.from(variable.dataSync() as Float32Array);
      const decay = this.weightDecay > 0 && this.decays(variable) ? decayStep : 0;
      for (let i = 0; i < w.length; i++) {
        const gi = g[i]!;
        const mi = beta1 * m[i]! + (1 - beta1) * gi;
        const vi = beta2 * v[i]! + (1 - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i]! - stepSize * (mi / (Math.sqrt(vi) + epsilon)) - decay * w[i]!;
      }
      tf.tidy(() => variable.assign(tf.tensor(w, variable.shape)));
    }
  }

  /**
   * The moments of `variables` (zeros where none yet) and the step count, for a checkpoint that
   * resumes training exactly where it stopped.
   */
  exportState(variables: readonly tf.Variable[]): AdamWState {
    const moments = variables.map((variable) => {
      const host = this.hostMoments.get(variable);
      if (host) return { m: host.m.slice(), v: host.v.slice() };
      const device = this.moments.get(variable);
      if (device) {
        return {
          m: (device.m.dataSync() as Float32Array).slice(),
          v: (device.v.dataSync() as Float32Array).slice(),
        };
      }
      return { m: new Float32Array(variable.size), v: new Float32Array(variable.size) };
    });
    return { steps: this.steps, moments };
  }

  /** Restores what exportState returned for the same variables, in the same order. */
  importState(variables: readonly tf.Variable[], state: AdamWState): void {
    if (state.moments.length !== variables.length) {
      throw new Error(
        `optimizer state holds ${state.moments.length} variables, expected ${variables.length}`,
      );
    }
    this.dispose();
    this.steps = state.steps;
    const host = HOST_BACKENDS.has(tf.getBackend());
    variables.forEach((variable, i) => {
      const { m, v } = state.moments[i]!;
      if (m.length !== variable.size || v.length !== variable.size) {
        throw new Error(
          `optimizer state of variable ${i} does not match its size ${variable.size}`,
        );
      }
      if (host) {
        this.hostMoments.set(variable, { m: m.slice(), v: v.slice() });
      } else {
        const toVariable = (values: Float32Array): tf.Variable => {
          const initial = tf.tensor(values, variable.shape);
          const result = tf.variable(initial, false);
          initial.dispose();
          return result;
        };
        this.moments.set(variable, { m: toVariable(m), v: toVariable(v) });
      }
    });
  }

  dispose(): void {
    this.hostMoments.clear();
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
    this.moments.clear();
  }
}
