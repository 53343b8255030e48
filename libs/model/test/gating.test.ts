import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  loadBalancingLoss,
  routeTopK,
  type Routing,
  slotDistribution,
  specializationLoss,
} from '../src';
import { useWasm } from './helpers';

beforeAll(useWasm);

describe('top-k gating', () => {
  it('keeps the k largest logits, renormalises their softmax and zeroes the rest', () => {
    const logits = tf.tensor2d([
      [1, 3, 2, 0],
      [0, 0, 5, 4],
    ]);
    const r = routeTopK(logits, 2);
    expect(Array.from(r.chosen)).toEqual([1, 2, 2, 3]);
    expect(r.assignments.map((a) => Array.from(a))).toEqual([[], [0], [0, 1], [1]]);
    const gates = r.gates.arraySync();
    const e1 = Math.exp(3),
      e2 = Math.exp(2);
    expect(gates[0]![1]).toBeCloseTo(e1 / (e1 + e2), 5);
    expect(gates[0]![2]).toBeCloseTo(e2 / (e1 + e2), 5);
    expect(gates[0]![0]).toBe(0);
    expect(gates[1]![0]! + gates[1]![1]!).toBe(0);
    tf.dispose([logits, r.gates, r.probs]);
  });

  it('breaks ties by the lower expert index', () => {
    const logits = tf.tensor2d([[2, 2, 2]]);
    const r = routeTopK(logits, 1);
    expect(Array.from(r.chosen)).toEqual([0]);
    tf.dispose([logits, r.gates, r.probs]);
  });

  it('passes gradients to the router logits through the chosen gates only', () => {
    const logits = tf.tensor2d([[1, 3, 2, 0]]);
    const weights = tf.tensor2d([[10, 20, 30, 40]]);
    const grad = tf.grad((l: tf.Tensor) =>
      tf.sum(tf.mul(routeTopK(l as tf.Tensor2D, 2).gates, weights)),
    )(logits);
    const g = grad.arraySync() as number[][];
    // Mathematically zero: the renormalised gates do not depend on unchosen logits.
    expect(g[0]![0]).toBeCloseTo(0, 5);
    expect(g[0]![3]).toBeCloseTo(0, 5);
    expect(g[0]![2]).toBeGreaterThan(0); // raising expert 2's gate moves weight from 20 to 30
    expect(g[0]![1]).toBeLessThan(0);
    tf.dispose([logits, weights, grad]);
  });

  it('load-balancing loss is α for a uniform router and larger when collapsed', () => {
    const uniform = routeTopK(
      tf.tensor2d([
        [0, 0],
        [0, 0],
      ]),
      1,
    );
    // chosen: expert 0 twice (ties) → f = [1, 0], P = [0.5, 0.5] → α·2·0.5 = α
    expect(loadBalancingLoss(uniform, 0.01).dataSync()[0]).toBeCloseTo(0.01, 6);
    const collapsed = routeTopK(
      tf.tensor2d([
        [9, 0],
        [9, 0],
      ]),
      1,
    );
    expect(loadBalancingLoss(collapsed, 0.01).dataSync()[0]).toBeGreaterThan(0.0199);
    const balanced = routeTopK(
      tf.tensor2d([
        [0, 0],
        [-1, 1],
      ]),
      1,
    );
    expect(loadBalancingLoss(balanced, 0.01).dataSync()[0]).toBeLessThanOrEqual(0.0101);
  });

  it('rejects k outside 1..E', () => {
    const logits = tf.tensor2d([[1, 2]]);
    expect(() => routeTopK(logits, 3)).toThrow(/top-k must be between 1/);
    logits.dispose();
  });
});

describe('specialization (class–expert mutual information)', () => {
  const routingOf = (probs: number[][], topK = 1): Routing => {
    const logits = tf.log(tf.tensor2d(probs)) as tf.Tensor2D;
    const r = routeTopK(logits, topK);
    logits.dispose();
    return r;
  };
  const dispose = (r: Routing): void => tf.dispose([r.probs, r.gates, r.logits]);

  it('is log E when each class has its own expert, and 0 when routing ignores the class', () => {
    const labels = tf.tensor1d([0, 1, 0, 1], 'int32');
    const own = routingOf([
      [1 - 1e-6, 1e-6],
      [1e-6, 1 - 1e-6],
      [1 - 1e-6, 1e-6],
      [1e-6, 1 - 1e-6],
    ]);
    const blind = routingOf([
      [0.5, 0.5],
      [0.5, 0.5],
      [0.5, 0.5],
      [0.5, 0.5],
    ]);
    const a = specializationLoss(own, labels, 2, 2);
    const b = specializationLoss(blind, labels, 2, 2);
    expect(a.mutualInformation.dataSync()[0]).toBeCloseTo(Math.log(2), 4);
    // −β · (MI + H(E)) with H(E) = log 2.
    expect(a.loss.dataSync()[0]).toBeCloseTo(-2 * 2 * Math.log(2), 4);
    expect(b.mutualInformation.dataSync()[0]).toBeCloseTo(0, 6);
    tf.dispose([labels, a.loss, a.mutualInformation, b.loss, b.mutualInformation]);
    dispose(own);
    dispose(blind);
  });

  it('top-2 slot probabilities sum to one and match Plackett–Luce sampling', () => {
    const p = [0.5, 0.3, 0.2];
    const probs = tf.tensor2d([p]);
    const q = slotDistribution(probs, 2).dataSync();
    // P(e in top 2) = p_e + Σ_{j≠e} p_j · p_e / (1 − p_j), halved.
    const exact = p.map(
      (pe, e) => (pe + p.reduce((n, pj, j) => (j === e ? n : n + (pj * pe) / (1 - pj)), 0)) / 2,
    );
    expect(Array.from(q).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    Array.from(q).forEach((v, e) => expect(v).toBeCloseTo(exact[e]!, 5));
    probs.dispose();
  });

  it('rewards a class that always takes the same pair over one whose second slot wanders', () => {
    const labels = tf.tensor1d([0, 0, 1, 1], 'int32');
    // Class 0: first choice e0 in both, second e1 vs e2/e3 spread.
    const pair = routingOf(
      [
        [0.6, 0.38, 0.01, 0.01],
        [0.6, 0.38, 0.01, 0.01],
        [0.01, 0.01, 0.6, 0.38],
        [0.01, 0.01, 0.6, 0.38],
      ],
      2,
    );
    const wander = routingOf(
      [
        [0.97, 0.01, 0.01, 0.01],
        [0.97, 0.01, 0.01, 0.01],
        [0.01, 0.01, 0.97, 0.01],
        [0.01, 0.01, 0.97, 0.01],
      ],
      2,
    );
    const a = specializationLoss(pair, labels, 2, 1).mutualInformation.dataSync()[0]!;
    const b = specializationLoss(wander, labels, 2, 1).mutualInformation.dataSync()[0]!;
    expect(a).toBeGreaterThan(b);
    tf.dispose(labels);
    dispose(pair);
    dispose(wander);
  });
});
