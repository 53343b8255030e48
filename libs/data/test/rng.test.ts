import { describe, expect, it } from 'vitest';
import { createRng, deriveSeed } from '../src/index';

describe('createRng', () => {
  it('repeats for a seed and differs across seeds', () => {
    const a = createRng(42);
    const b = createRng(42);
    const seqA = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(seqA);
    const c = createRng(43);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(seqA);
    expect(createRng('run-1').next()).toBe(createRng('run-1').next());
    expect(createRng(1).next()).not.toBe(createRng(2 ** 32 + 1).next());
  });

  it('is pinned, so other libraries can rely on the exact sequence', () => {
    const r = createRng(0);
    expect(Array.from({ length: 3 }, () => r.nextUint32())).toEqual([
      1124887014, 3599819727, 2505802108,
    ]);
  });

  it('draws ints in range, roughly uniformly', () => {
    const r = createRng(7);
    const counts = new Array<number>(6).fill(0);
    let bad = 0;
    for (let i = 0; i < 60000; i++) {
      const v = r.int(6);
      if (Number.isInteger(v) && v >= 0 && v < 6) counts[v]!++;
      else bad++;
    }
    expect(bad).toBe(0);
    for (const k of counts) expect(Math.abs(k - 10000)).toBeLessThan(400);
    const floats = Array.from({ length: 1000 }, () => r.next());
    expect(floats.every((f) => f >= 0 && f < 1)).toBe(true);
    expect(() => r.int(0)).toThrow(RangeError);
  });

  it('shuffles into a permutation and forks independently of draws', () => {
    const r = createRng(3);
    const arr = Int32Array.from({ length: 100 }, (_, i) => i);
    r.shuffle(arr);
    expect(Array.from(arr).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(Array.from(arr)).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
    // Every ordering of three items should be equally likely (a Sattolo-style bug gives only 2).
    const freq = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const k = r.shuffle([0, 1, 2]).join('');
      freq.set(k, (freq.get(k) ?? 0) + 1);
    }
    expect(freq.size).toBe(6);
    for (const k of freq.values()) expect(Math.abs(k - 1000)).toBeLessThan(150);
    const f1 = createRng(3).fork('x').next();
    const used = createRng(3);
    used.next();
    expect(used.fork('x').next()).toBe(f1);
    expect(createRng(3).fork('y').next()).not.toBe(f1);
    expect(deriveSeed(1, 'a', 2)).not.toBe(deriveSeed(1, 'a', 3));
  });
});
