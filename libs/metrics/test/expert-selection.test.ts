import { describe, expect, it } from 'vitest';
import { formatSelectionRule, parseSelectionRule, selectExperts } from '../src';

describe('expert selection', () => {
  it('coverage picks the smallest set covering the fraction, most activated first', () => {
    expect(selectExperts([10, 50, 30, 10], { kind: 'coverage', fraction: 0.8 })).toEqual([1, 2]);
    expect(selectExperts([10, 50, 30, 10], { kind: 'coverage', fraction: 0.81 })).toEqual([
      1, 2, 0,
    ]);
    expect(selectExperts([0, 0, 5, 0], { kind: 'coverage', fraction: 0.5 })).toEqual([2]);
    expect(selectExperts([25, 25, 25, 25], { kind: 'coverage', fraction: 1 })).toEqual([
      0, 1, 2, 3,
    ]);
  });

  it('top:N picks the N most activated, ties to the lower index', () => {
    expect(selectExperts([5, 9, 9, 1], { kind: 'top', count: 2 })).toEqual([1, 2]);
    expect(selectExperts([5, 9, 9, 1], { kind: 'top', count: 9 })).toEqual([1, 2, 0, 3]);
  });

  it('parses and formats rules, rejecting nonsense', () => {
    expect(parseSelectionRule('coverage:0.8')).toEqual({ kind: 'coverage', fraction: 0.8 });
    expect(parseSelectionRule('top:3')).toEqual({ kind: 'top', count: 3 });
    expect(formatSelectionRule({ kind: 'top', count: 3 })).toBe('top:3');
    for (const bad of ['coverage:0', 'coverage:1.5', 'top:0', 'top:1.5', 'all', 'top']) {
      expect(() => parseSelectionRule(bad)).toThrow(/invalid expert selection/);
    }
  });
});
