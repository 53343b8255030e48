/**
 * Every rejection of a caller's input (length mismatch, empty set, label out of range,
 * probabilities that are not probabilities) is a MetricsError, so libs/unlearning can tell "the
 * numbers I passed are inconsistent" apart from a bug here and put the message in a receipt.
 */
export class MetricsError extends Error {
  override readonly name = 'MetricsError';
}
