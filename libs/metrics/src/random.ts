import { MetricsError } from './errors';

/**
 * Seeded randomness for subsampling and splits. The metrics of a forget receipt must be
 * reproducible from the same model outputs, so nothing here may touch Math.random.
 * mulberry32: 32-bit state, fast, and plenty for shuffling a few hundred thousand indices.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/**
 * `stream` separates independent uses of one seed (members vs non-members), so that a change in
 * one set's size cannot shift the other's draws.
 */
export function createRng(seed: number, stream = 0): Rng {
  if (!Number.isFinite(seed)) throw new MetricsError(`seed must be a finite number, got ${seed}`);
  // Mixing first keeps nearby seeds (0, 1, 2) from starting on correlated streams.
  let state = mix32(mix32(Math.trunc(seed) >>> 0) ^ stream);
  const next = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n) => Math.floor(next() * n) };
}

/** Fisher–Yates shuffle in place. */
export function shuffleInPlace(a: Int32Array, rng: Rng): Int32Array {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}
