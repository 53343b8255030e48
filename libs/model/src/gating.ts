import * as tf from '@tensorflow/tfjs-core';

/** Which experts each sample went to, and with what weight. */
export interface Routing {
  /** [B, E] softmax over all experts: the router's full opinion (used by the balance loss). */
  probs: tf.Tensor2D;
  /** [B, E] softmax renormalised over each sample's top k, zero elsewhere; differentiable. */
  gates: tf.Tensor2D;
  /** [B * k] the chosen experts, sample-major, best first. */
  chosen: Int32Array;
  /** For each expert, the batch positions routed to it. */
  assignments: Int32Array[];
  topK: number;
}

/**
 * Top-k gating as a one-hot mask of the k largest logits times the softmax, renormalised.
 *
 * tfjs has no gradient for TopK, and the choice itself is not differentiable anyway; the mask is
 * a constant, so gradients flow to the router only through the softmax of the chosen experts.
 * The top k are picked in JavaScript: the [B, E] logits are tiny, and it keeps tie-breaking
 * (lowest index first) identical on every backend.
 */
export function routeTopK(logits: tf.Tensor2D, topK: number): Routing {
  const [batch, experts] = logits.shape;
  if (topK < 1 || topK > experts) {
    throw new Error(`top-k must be between 1 and the number of experts (${experts}), got ${topK}`);
  }
  const values = logits.dataSync();
  const chosen = new Int32Array(batch * topK);
  const mask = new Float32Array(batch * experts);
  const counts = new Int32Array(experts);
  const order = Array.from({ length: experts }, (_, i) => i);
  for (let b = 0; b < batch; b++) {
    const row = b * experts;
    order.sort((i, j) => values[row + j]! - values[row + i]! || i - j);
    for (let r = 0; r < topK; r++) {
      const e = order[r]!;
      chosen[b * topK + r] = e;
      mask[row + e] = 1;
      counts[e]!++;
    }
  }
  const assignments = Array.from({ length: experts }, (_, e) => new Int32Array(counts[e]!));
  const filled = new Int32Array(experts);
  for (let b = 0; b < batch; b++) {
    for (let e = 0; e < experts; e++) {
      if (mask[b * experts + e]) assignments[e]![filled[e]!++] = b;
    }
  }
  const probs = tf.softmax(logits);
  const masked = tf.mul(probs, tf.tensor2d(mask, [batch, experts]));
  const gates = tf.div(masked, tf.add(tf.sum(masked, 1, true), 1e-9)) as tf.Tensor2D;
  return { probs, gates, chosen, assignments, topK };
}

/**
 * Switch-Transformer load-balancing loss: α · E · Σᵢ fᵢ · Pᵢ, where fᵢ is the share of routing
 * slots given to expert i (a constant) and Pᵢ the router's mean probability for it. Minimal
 * (= α) when both are uniform.
 */
export function loadBalancingLoss(routing: Routing, alpha: number): tf.Scalar {
  const experts = routing.probs.shape[1];
  const slots = routing.chosen.length;
  const share = new Float32Array(experts);
  for (const e of routing.chosen) share[e]! += 1 / slots;
  const meanProb = tf.mean(routing.probs, 0);
  return tf.mul(tf.sum(tf.mul(meanProb, tf.tensor1d(share))), alpha * experts) as tf.Scalar;
}
