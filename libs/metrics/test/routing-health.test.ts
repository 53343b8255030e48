import { describe, expect, it } from 'vitest';
import { formatRoutingHealth, MetricsError, routingHealth } from '../src';

describe('routing health', () => {
  it('perfectly specialised routing: each class on its own pair, low collateral', () => {
    // 4 classes, 4 experts, k = 2: class c on experts c and c+1 (mod 4), 100 samples each.
    const slots = [0, 1, 2, 3].map((c) =>
      [0, 1, 2, 3].map((e) => (e === c || e === (c + 1) % 4 ? 100 : 0)),
    );
    const h = routingHealth(slots, 2);
    expect(h.utilisation).toEqual([1, 1, 1, 1]);
    expect(h.deadExperts).toEqual([]);
    expect(h.concentration).toEqual([100, 100, 100, 100]);
    expect(h.plannedExperts[0]).toEqual([0, 1]);
    // Experts 0 and 1 carry 200 of the other classes' 600 slots (class 3 on e0, class 1 on e1).
    expect(h.collateral[0]).toBeCloseTo((100 * 200) / 600, 10);
    expect(h.meanCollateral).toBeCloseTo(100 / 3, 10);
    expect(h.rule).toBe('coverage:0.99');
  });

  it('generalist routing: every class on the same two experts, two dead experts', () => {
    const slots = [0, 1, 2].map(() => [100, 100, 0, 0]);
    const h = routingHealth(slots, 2);
    expect(h.utilisation).toEqual([2, 2, 0, 0]);
    expect(h.deadExperts).toEqual([2, 3]);
    expect(h.collateral).toEqual([100, 100, 100]);
    expect(h.minUtilisation).toBe(0);
    expect(formatRoutingHealth(h)).toContain('dead experts: e2 e3');
  });

  it('ignores classes without samples in the means', () => {
    const h = routingHealth(
      [
        [10, 0],
        [0, 0],
        [0, 10],
      ],
      1,
    );
    expect(h.collateral[1]).toBe(0);
    expect(h.meanCollateral).toBe(0);
    expect(h.meanConcentration).toBe(100);
  });

  it('rejects tables that are not [class][expert] slot counts', () => {
    expect(() => routingHealth([], 1)).toThrow(MetricsError);
    expect(() => routingHealth([[1, 2], [3]], 1)).toThrow(/one slot count per expert/);
    expect(() => routingHealth([[1, 2]], 3)).toThrow(/top-k/);
  });
});
