import * as tf from '@tensorflow/tfjs-core';

/** Softmax cross-entropy per sample [B] of logits [B, C] against integer labels [B]. */
export function perSampleCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const logProbs = tf.logSoftmax(logits);
  return tf.neg(tf.sum(tf.mul(logProbs, tf.oneHot(labels, logits.shape[1])), 1)) as tf.Tensor1D;
}

/** Mean softmax cross-entropy of logits [B, C] against integer labels [B]. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.mean(perSampleCrossEntropy(logits, labels)) as tf.Scalar;
}

/**
 * Complement cross-entropy −log(1 − p_y) per sample: large when the true class is predicted,
 * 0 when it has no probability, and smooth — unlike gradient ascent on cross-entropy, which
 * diverges. Computed as logsumexp(all) − logsumexp(all but y) for numerical stability.
 */
export function perSampleComplementCrossEntropy(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
): tf.Tensor1D {
  const others = tf.add(logits, tf.mul(tf.oneHot(labels, logits.shape[1]), -1e9));
  return tf.sub(tf.logSumExp(logits, 1), tf.logSumExp(others, 1));
}

/** Mean complement cross-entropy; see perSampleComplementCrossEntropy. */
export function complementCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.mean(perSampleComplementCrossEntropy(logits, labels)) as tf.Scalar;
}
