/**
 * A small seeded PRNG shared by the Lethe libraries. Exact unlearning (SISA replay) needs
 * training to be bit-for-bit repeatable, so every random choice outside TensorFlow.js (shuffles,
 * augmentation, shard plans) must come from a generator that depends only on a seed.
 *
 * xoshiro128** (Blackman & Vigna): 128-bit state, 32-bit output, passes BigCrush, and only
 * needs 32-bit integer arithmetic, which JavaScript does cheaply via Math.imul and `>>> 0`.
 */

export interface Rng {
  /** The seed this generator was created from (after hashing strings). */
  readonly seed: number;
  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** Uniform unsigned 32-bit integer. */
  nextUint32(): number;
  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number;
  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T;
  /**
   * An independent generator derived from this one's seed and `label` only, not from how many
   * numbers this one has produced, so adding a draw in one place cannot change another stream.
   */
  fork(label: number | string): Rng;
}

const GOLDEN = 0x9e3779b9;

/** splitmix32 finaliser: a strong 32-bit mixer, used to spread seeds over the state. */
function mix32(x: number): number {
  let z = (x + GOLDEN) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** FNV-1a over UTF-16 code units, then mixed; only used to turn string seeds into numbers. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  }
  return mix32(h);
}

/** Folds any finite number (including ones above 2^32 and negatives) into 32 bits. */
function seedToUint32(seed: number | string): number {
  if (typeof seed === 'string') return hashString(seed);
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be finite, got ${seed}`);
  const whole = Math.trunc(seed);
  const lo = whole >>> 0;
  const hi = Math.floor(whole / 4294967296) >>> 0;
  // Mixing the high word in keeps seeds like 1 and 2^32+1 apart.
  return hi === 0 ? lo : mix32(lo ^ mix32(hi));
}

/** Derives a 32-bit seed from a base seed and further parts (e.g. epoch, purpose). */
export function deriveSeed(seed: number | string, ...parts: (number | string)[]): number {
  let h = mix32(seedToUint32(seed));
  for (const p of parts) {
    h = mix32(h ^ mix32(seedToUint32(p) + 0x6a09e667));
  }
  return h;
}

class Xoshiro128 implements Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(readonly seed: number) {
    let x = seed;
    const step = (): number => {
      x = (x + GOLDEN) | 0;
      return mix32(x);
    };
    this.s0 = step();
    this.s1 = step();
    this.s2 = step();
    this.s3 = step();
    // The all-zero state is the one fixed point of xoshiro; splitmix makes it near impossible,
    // but guard anyway.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  next(): number {
    return this.nextUint32() / 4294967296;
  }

  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) {
      throw new RangeError(`int(n) needs an integer 1 <= n <= 2^32, got ${n}`);
    }
    // Rejection sampling: draws at or above the largest multiple of n would favour small values.
    const limit = 4294967296 - (4294967296 % n);
    let r = this.nextUint32();
    while (r >= limit) r = this.nextUint32();
    return r % n;
  }

  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  fork(label: number | string): Rng {
    return new Xoshiro128(deriveSeed(this.seed, label));
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Creates a generator; the same seed always yields the same sequence, on every platform. */
export function createRng(seed: number | string): Rng {
  return new Xoshiro128(seedToUint32(seed));
}
