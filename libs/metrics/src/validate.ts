import { MetricsError } from './errors';

/** A per-sample boolean flag: `true`/`false`, or 1/0 as in a `Uint8Array`. */
export type Mask = ArrayLike<boolean> | ArrayLike<number>;

export function checkSameLength(what: string, a: ArrayLike<unknown>, b: ArrayLike<unknown>): void {
  if (a.length !== b.length) {
    throw new MetricsError(`${what}: length mismatch (${a.length} vs ${b.length})`);
  }
}

export function checkNonEmpty(what: string, n: number): void {
  if (n === 0) throw new MetricsError(`${what}: empty set`);
}

/**
 * Labels and predictions must be non-negative integers; a float or -1 here means the caller
 * passed logits or an "unknown" marker, and silently counting it as wrong would skew accuracy.
 */
export function checkClassIds(what: string, ids: ArrayLike<number>, numClasses?: number): void {
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (!Number.isInteger(v) || v < 0 || (numClasses !== undefined && v >= numClasses)) {
      const range = numClasses === undefined ? 'a non-negative integer' : `in [0, ${numClasses})`;
      throw new MetricsError(`${what}[${i}] = ${v} is not a class id ${range}`);
    }
  }
}

export function maxClassId(...arrays: ArrayLike<number>[]): number {
  let max = -1;
  for (const a of arrays) for (let i = 0; i < a.length; i++) if (a[i]! > max) max = a[i]!;
  return max;
}

/** Reads a mask into 0/1 bytes, refusing values that are neither booleans nor 0/1. */
export function toBits(what: string, mask: Mask): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) {
    const v: unknown = mask[i];
    if (v === true || v === 1) out[i] = 1;
    else if (v !== false && v !== 0) {
      throw new MetricsError(`${what}[${i}] = ${String(v)} is not a boolean or 0/1`);
    }
  }
  return out;
}

export function checkFraction(what: string, v: number, allowZero: boolean): void {
  if (!Number.isFinite(v) || v < 0 || v >= 1 || (!allowZero && v === 0)) {
    throw new MetricsError(`${what} must be in ${allowZero ? '[0' : '(0'}, 1), got ${v}`);
  }
}

export function checkPositive(what: string, v: number, allowZero = false): void {
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new MetricsError(`${what} must be ${allowZero ? 'non-negative' : 'positive'}, got ${v}`);
  }
}
