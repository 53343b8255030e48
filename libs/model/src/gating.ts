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
  /** [B, E] the router's logits before any training noise (what inference routes on). */
  logits: tf.Tensor2D;
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
  return { probs, gates, chosen, assignments, topK, logits };
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

/**
 * Each expert's probability of being among a sample's top k, divided by k: a distribution over
 * routing slots. Exact for k ≤ 2 under Plackett–Luce sampling from the router's softmax, which
 * noisy top-k routing approximates: P(e ∈ top 2) = pₑ · (1 + Σⱼ rⱼ − rₑ) with rⱼ = pⱼ / (1 − pⱼ).
 * For k > 2 the softmax itself stands in (the exact form grows as E^k).
 */
export function slotDistribution(probs: tf.Tensor2D, topK: number): tf.Tensor2D {
  if (topK !== 2) return probs;
  return tf.tidy(() => {
    const odds = tf.div(probs, tf.maximum(tf.sub(1, probs), 1e-6));
    const others = tf.sub(tf.add(tf.sum(odds, 1, true), 1), odds);
    return tf.div(tf.mul(probs, others), 2) as tf.Tensor2D;
  });
}

/**
 * Class–expert mutual-information loss over the batch's routing slots (as Mod-Squad's MI loss
 * between tasks and experts, with classes as tasks): −β · (2·H(E) − H(E|Y)). H(E|Y) low makes
 * each class use few experts — what makes a class forget retrain few experts that carry little
 * of the other classes; H(E) high keeps every expert in use. H(E) counts twice: with the plain
 * MI (once) one of 8 experts died in measurement (docs/routing.md), with twice none did, at the
 * same collateral. Only training sees labels; the router still routes on the image alone.
 * Returns the loss and the MI, H(E) − H(E|Y), in nats.
 */
export function specializationLoss(
  routing: Routing,
  labels: tf.Tensor1D,
  numClasses: number,
  beta: number,
): { loss: tf.Scalar; mutualInformation: tf.Scalar } {
  const eps = 1e-9;
  const entropy = (p: tf.Tensor, axis: number): tf.Tensor =>
    tf.neg(tf.sum(tf.mul(p, tf.log(tf.add(p, eps))), axis));
  const slots = slotDistribution(routing.probs, routing.topK);
  const onehot = tf.cast(tf.oneHot(labels, numClasses), 'float32') as tf.Tensor2D;
  const perClass = tf.sum(onehot, 0);
  const classPrior = tf.div(perClass, labels.shape[0]);
  const expertGivenClass = tf.div(
    tf.matMul(onehot, slots, true, false),
    tf.expandDims(tf.maximum(perClass, 1), 1),
  );
  const expertPrior = tf.mean(slots, 0);
  const usage = entropy(expertPrior, 0);
  const mutualInformation = tf.sub(
    usage,
    tf.sum(tf.mul(classPrior, entropy(expertGivenClass, 1))),
  ) as tf.Scalar;
  const loss = tf.mul(tf.add(mutualInformation, usage), -beta) as tf.Scalar;
  return { loss, mutualInformation };
}
