import * as tf from '@tensorflow/tfjs-core';

/** Mean softmax cross-entropy of logits [B, C] against integer labels [B]. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const classes = logits.shape[1];
  const logProbs = tf.logSoftmax(logits);
  const picked = tf.sum(tf.mul(logProbs, tf.oneHot(labels, classes)), 1);
  return tf.neg(tf.mean(picked)) as tf.Scalar;
}

/**
 * Complement cross-entropy −log(1 − p_y): large when the true class is predicted, bounded below
 * by 0 and smooth, unlike gradient ascent on cross-entropy which diverges. Computed from logits
 * as logsumexp(all) − logsumexp(all but y) for numerical stability.
 */
export function complementCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const classes = logits.shape[1];
  const trueMask = tf.oneHot(labels, classes);
  const others = tf.add(logits, tf.mul(trueMask, -1e9));
  return tf.mean(tf.sub(tf.logSumExp(logits, 1), tf.logSumExp(others, 1))) as tf.Scalar;
}
