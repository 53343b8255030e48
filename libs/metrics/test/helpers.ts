/** Seeded uniform and normal draws for synthetic test data (independent of the lib's own RNG). */
export function makeRandom(seed: number): { uniform(): number; normal(): number } {
  let state = seed >>> 0;
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number =>
    Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

/**
 * Softmax-like rows over `numClasses` whose true-class probability is exactly `pTrue[i]`, the
 * rest spread evenly: the only thing the confidence attack looks at.
 */
export function probsWithTrueClass(
  pTrue: readonly number[],
  labels: readonly number[],
  numClasses: number,
): Float32Array {
  const out = new Float32Array(pTrue.length * numClasses);
  pTrue.forEach((p, i) => {
    for (let j = 0; j < numClasses; j++) {
      out[i * numClasses + j] = j === labels[i] ? p : (1 - p) / (numClasses - 1);
    }
  });
  return out;
}

/** A probability set of n samples with labels cycling over the classes and p_true drawn by `draw`. */
export function probabilitySet(
  n: number,
  numClasses: number,
  draw: () => number,
): { probs: Float32Array; labels: Int32Array } {
  const labels = Array.from({ length: n }, (_, i) => i % numClasses);
  const pTrue = labels.map(() => draw());
  return { probs: probsWithTrueClass(pTrue, labels, numClasses), labels: Int32Array.from(labels) };
}
