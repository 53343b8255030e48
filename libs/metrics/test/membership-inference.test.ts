import { describe, expect, it } from 'vitest';
import { miaEfficacy, miaFeatures, rocAuc, softmax } from '../src/index';
import { makeRandom, probabilitySet, probsWithTrueClass } from './helpers';

const C = 10;
const rnd = makeRandom(2024);
// Members are confidently right (p_true in [0.7, 1]); non-members overlap them from below.
const retain = probabilitySet(3000, C, () => 0.7 + 0.3 * rnd.uniform());
const test = probabilitySet(1000, C, () => 0.8 * rnd.uniform());
const lowForget = probabilitySet(200, C, () => 0.3 * rnd.uniform());
const highForget = probabilitySet(200, C, () => 0.9 + 0.1 * rnd.uniform());

describe('miaEfficacy', () => {
  it('≈ 100 when the forgotten samples look like non-members', () => {
    const r = miaEfficacy({ retain, test, forget: lowForget });
    expect(r.efficacy).toBe(100);
    expect(r.attackAccuracy).toBeGreaterThan(80);
    expect(r.attackAuc).toBeGreaterThan(0.9);
    expect(r.threshold).toBeGreaterThan(0.65);
    expect(r.threshold).toBeLessThan(0.8);
    expect(r.counts).toEqual({ fitPerSide: 800, heldOutPerSide: 200, forget: 200 });
    expect(r.features).toEqual(['confidence']);
  });

  it('≈ 0 when the forgotten samples look like members', () => {
    expect(miaEfficacy({ retain, test, forget: highForget }).efficacy).toBe(0);
  });

  it('reports a chance-level attack when members and non-members look alike', () => {
    const r2 = makeRandom(5);
    const same = () => probabilitySet(1000, C, () => r2.uniform());
    const r = miaEfficacy({ retain: same(), test: same(), forget: lowForget });
    expect(r.attackAccuracy).toBeGreaterThan(40);
    expect(r.attackAccuracy).toBeLessThan(60);
    expect(r.attackAuc).toBeGreaterThan(0.4);
    expect(r.attackAuc).toBeLessThan(0.6);
  });

  it('accepts a feature vector [p_true, entropy]', () => {
    const r = miaEfficacy({ retain, test, forget: lowForget, features: ['confidence', 'entropy'] });
    expect(r.model.weights).toHaveLength(2);
    expect(r.efficacy).toBeGreaterThan(95);
    expect(r.threshold).toBeUndefined();
    const m = miaEfficacy({ retain, test, forget: highForget, features: ['modifiedEntropy'] });
    expect(m.efficacy).toBeLessThan(5);
  });

  it('is deterministic for a seed, and the seed matters', () => {
    const a = miaEfficacy({ retain, test, forget: lowForget, seed: 1 });
    const b = miaEfficacy({ retain, test, forget: lowForget, seed: 1 });
    const c = miaEfficacy({ retain, test, forget: lowForget, seed: 2 });
    expect(a).toEqual(b);
    expect(c.model.bias).not.toBe(a.model.bias);
  });

  it('rejects bad input with a clear error', () => {
    const logits = { probs: Float32Array.from([2, -1, 0.5, 3]), labels: [0, 1] };
    expect(() => miaEfficacy({ retain, test, forget: logits })).toThrow(/classes/);
    const logits10 = { ...lowForget, probs: lowForget.probs.map((p) => p * 5) };
    expect(() => miaEfficacy({ retain, test, forget: logits10 })).toThrow(/softmax/);
    const unnormalised = { ...lowForget, probs: lowForget.probs.map((p) => p * 0.5) };
    expect(() => miaEfficacy({ retain, test, forget: unnormalised })).toThrow(/sums to/);
    const empty = { probs: new Float32Array(0), labels: [] };
    expect(() => miaEfficacy({ retain, test, forget: empty })).toThrow(/forget: empty set/);
    const ragged = { probs: new Float32Array(15), labels: [0, 1] };
    expect(() => miaEfficacy({ retain, test: ragged, forget: lowForget })).toThrow(
      /n × numClasses/,
    );
    const badLabel = { probs: probsWithTrueClass([0.5], [0], C), labels: [10] };
    expect(() => miaEfficacy({ retain, test, forget: badLabel })).toThrow(/not a class id/);
    const one = probabilitySet(1, C, () => 0.5);
    expect(() => miaEfficacy({ retain: one, test, forget: lowForget })).toThrow(/too few/);
    expect(() => miaEfficacy({ retain, test, forget: lowForget, heldOutFraction: 1 })).toThrow(
      /heldOutFraction/,
    );
    expect(() => miaEfficacy({ retain, test, forget: lowForget, features: [] })).toThrow(
      /no features/,
    );
  });
});

describe('miaFeatures, softmax, rocAuc', () => {
  it('computes confidence, entropy and modified entropy', () => {
    const set = { probs: [0.5, 0.25, 0.25, 1, 0, 0], labels: [0, 0] };
    const f = miaFeatures(set, ['confidence', 'entropy', 'modifiedEntropy']);
    expect(f.shape).toEqual([2, 3]);
    const d = Array.from(f.data);
    expect(d[0]).toBe(0.5);
    expect(d[1]).toBeCloseTo(1.5 * Math.LN2, 12);
    expect(d[2]).toBeCloseTo(-0.5 * Math.log(0.5) - 2 * 0.25 * Math.log(0.75), 12);
    expect(d.slice(3)).toEqual([1, 0, 0]);
  });

  it('softmax is stable for large logits', () => {
    const p = softmax([1000, 0, 0, 0], 2);
    expect(Array.from(p)).toEqual([1, 0, 0.5, 0.5]);
    expect(() => softmax([1, 2, 3], 2)).toThrow(/rows of 2/);
  });

  it('rocAuc counts ties as half', () => {
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBe(0.75);
    expect(rocAuc([1, 1], [1, 0])).toBe(0.5);
    expect(rocAuc([3, 1], [true, false])).toBe(1);
    expect(() => rocAuc([1, 2], [1, 1])).toThrow(/both classes/);
  });
});
