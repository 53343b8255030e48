import * as tf from '@tensorflow/tfjs-core';

/**
 * Owns the variables of one independently saved part of the model (the router, or one expert).
 *
 * tfjs registers variables by globally unique name, and several models may live in one process
 * (a model and its retrain oracle, say), so each collection prefixes its variables with a
 * process-unique scope. The logical name (without the scope) is what gets serialised.
 */
let nextScope = 0;

export interface NamedVariable {
  /** Stable name inside its collection, e.g. `block0/conv/kernel`. */
  readonly name: string;
  readonly variable: tf.Variable;
  readonly trainable: boolean;
}

export class ParameterCollection {
  private readonly scope = `lethe${nextScope++}`;
  private readonly entries: NamedVariable[] = [];
  private seedCounter = 0;

  constructor(
    readonly label: string,
    private readonly seed: number,
  ) {}

  /** A seed for the next random initialiser: distinct per variable, repeatable per collection. */
  nextSeed(): number {
    return (this.seed * 1_000_003 + ++this.seedCounter * 7919) % 2_147_483_647;
  }

  add(name: string, initial: tf.Tensor, trainable = true): tf.Variable {
    if (this.entries.some((e) => e.name === name)) {
      throw new Error(`${this.label}: duplicate parameter name ${name}`);
    }
    const variable = tf.variable(initial, trainable, `${this.scope}/${this.label}/${name}`);
    initial.dispose();
    this.entries.push({ name, variable, trainable });
    return variable;
  }

  all(): readonly NamedVariable[] {
    return this.entries;
  }

  trainable(): tf.Variable[] {
    return this.entries.filter((e) => e.trainable).map((e) => e.variable);
  }

  get(name: string): tf.Variable {
    const entry = this.entries.find((e) => e.name === name);
    if (!entry) throw new Error(`${this.label}: no parameter named ${name}`);
    return entry.variable;
  }

  countParameters(): number {
    return this.entries.filter((e) => e.trainable).reduce((n, e) => n + e.variable.size, 0);
  }

  dispose(): void {
    for (const e of this.entries) e.variable.dispose();
    this.entries.length = 0;
  }
}
