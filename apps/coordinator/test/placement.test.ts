import { describe, expect, it } from 'vitest';
import { placeExperts } from '../src/workers/placement';

const workers = (n: number, capacity = 8) =>
  Array.from({ length: n }, (_, i) => ({ id: `w-${i + 1}`, capacity }));

const loads = (placement: Map<number, string>) => {
  const counts = new Map<string, number>();
  for (const w of placement.values()) counts.set(w, (counts.get(w) ?? 0) + 1);
  return [...counts.values()].sort();
};

describe('placeExperts', () => {
  it('puts one expert per worker when there are enough workers, several otherwise', () => {
    expect(loads(placeExperts(4, workers(4), new Map()))).toEqual([1, 1, 1, 1]);
    expect(loads(placeExperts(8, workers(3), new Map()))).toEqual([2, 3, 3]);
  });

  it('keeps experts where they are and moves only those of a lost worker', () => {
    const before = placeExperts(6, workers(3), new Map());
    const after = placeExperts(
      6,
      workers(3).filter((w) => w.id !== 'w-2'),
      before,
    );
    for (const [e, w] of before) if (w !== 'w-2') expect(after.get(e)).toBe(w);
    expect([...after.values()]).not.toContain('w-2');
    expect(loads(after)).toEqual([3, 3]);
  });

  it('respects capacity and leaves experts unassigned when nothing fits', () => {
    const placement = placeExperts(5, workers(2, 2), new Map());
    expect(placement.size).toBe(4);
    expect(loads(placement)).toEqual([2, 2]);
  });

  it('rebalances onto a worker that joins, moving as few experts as needed', () => {
    const before = placeExperts(6, workers(2), new Map());
    const after = placeExperts(6, workers(3), before, { rebalance: true });
    expect(loads(after)).toEqual([2, 2, 2]);
    const moved = [...after].filter(([e, w]) => before.get(e) !== w);
    expect(moved).toHaveLength(2);
    expect(moved.every(([, w]) => w === 'w-3')).toBe(true);
    // Without rebalancing the newcomer waits for experts that need a home.
    expect(loads(placeExperts(6, workers(3), before))).toEqual([3, 3]);
  });
});
