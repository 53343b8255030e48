import * as tf from '@tensorflow/tfjs-core';
import type { ExpertLogitsProvider, MoEModel } from '@lethe/model';

/**
 * Logits of frozen experts per training sample, computed the first time a sample is routed to
 * a frozen expert and reused afterwards. A frozen expert's weights and batch-norm statistics
 * never change, and forgetting retrains without augmentation, so its output on a sample is a
 * constant: each (expert, sample) pair costs at most one forward pass over the whole run.
 */
export class FrozenExpertCache {
  private readonly logits: Float32Array[] = [];
  private readonly known: Uint8Array[] = [];
  private computed = 0;
  private reused = 0;

  constructor(
    private readonly model: MoEModel,
    readonly frozen: ReadonlySet<number>,
    samples: number,
  ) {
    const classes = model.config.numClasses;
    for (let e = 0; e < model.config.experts; e++) {
      this.logits.push(frozen.has(e) ? new Float32Array(samples * classes) : new Float32Array(0));
      this.known.push(frozen.has(e) ? new Uint8Array(samples) : new Uint8Array(0));
    }
  }

  /**
   * A provider for one batch: `x` holds the batch's images and `positions` their sample
   * positions in the dataset the cache was sized for.
   */
  provider(x: tf.Tensor4D, positions: Int32Array): ExpertLogitsProvider {
    return (expert, routed) => {
      if (!this.frozen.has(expert)) return undefined;
      const classes = this.model.config.numClasses;
      const store = this.logits[expert]!;
      const known = this.known[expert]!;
      const missing = Array.from(routed).filter((b) => !known[positions[b]!]);
      if (missing.length > 0) {
        const fresh = tf.tidy(() =>
          this.model
            .part(`expert/${expert}`)
            .apply(tf.gather(x, tf.tensor1d(missing, 'int32')), false),
        );
        const values = fresh.dataSync();
        fresh.dispose();
        missing.forEach((b, i) => {
          store.set(values.subarray(i * classes, (i + 1) * classes), positions[b]! * classes);
          known[positions[b]!] = 1;
        });
        this.computed += missing.length;
      }
      this.reused += routed.length - missing.length;
      const out = new Float32Array(routed.length * classes);
      routed.forEach((b, i) =>
        out.set(
          store.subarray(positions[b]! * classes, (positions[b]! + 1) * classes),
          i * classes,
        ),
      );
      return tf.tensor2d(out, [routed.length, classes]);
    };
  }

  stats(): { computed: number; reused: number } {
    return { computed: this.computed, reused: this.reused };
  }
}
