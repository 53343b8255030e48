import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate, MoEModel } from '../src';
import { tinyModel, toyBatch, useWasm, weightsOf } from './helpers';

beforeAll(useWasm);

describe('MoEModel', () => {
  let x: tf.Tensor4D, y: tf.Tensor1D, xs: Float32Array, ys: Int32Array;
  beforeAll(() => ({ x, y, xs, ys } = toyBatch(48)));
  afterAll(() => tf.dispose([x, y]));

  it('learns a separable toy problem and routes to k experts per sample', () => {
    const model = tinyModel();
    const first = model.trainStep(x, y, { learningRate: 0.01 });
    let last = first;
    for (let i = 0; i < 40; i++) last = model.trainStep(x, y, { learningRate: 0.01 });
    expect(last.loss).toBeLessThan(first.loss * 0.5);
    expect(last.expertLoad.reduce((a, b) => a + b, 0)).toBe(48 * 2);
    const result = evaluate(model, [{ x: xs, y: ys, size: 48 }]);
    expect(result.accuracy).toBeGreaterThan(0.9);
    for (const row of result.routing) expect(row.reduce((a, b) => a + b, 0)).toBe(16 * 2);
    model.dispose();
  });

  it('keeps the number of live tensors constant across training steps', () => {
    const model = tinyModel({ specializeWeight: 1 });
    let atStep10 = 0;
    for (let step = 1; step <= 100; step++) {
      model.trainStep(x, y, { learningRate: 0.005 });
      if (step === 10) atStep10 = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(atStep10);
    const before = tf.memory().numTensors;
    tf.dispose(model.predict(x));
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('with the specialization loss, routes each class to fewer experts than without', () => {
    const slotsAfter = (specializeWeight: number): number[][] => {
      const model = tinyModel({ specializeWeight, balanceWeight: 0.1, topK: 1 });
      for (let i = 0; i < 60; i++) model.trainStep(x, y, { learningRate: 0.01 });
      const { routing } = evaluate(model, [{ x: xs, y: ys, size: 48 }]);
      model.dispose();
      return routing;
    };
    // Mutual information (nats) between class and expert from a [class][expert] count table.
    const mi = (table: number[][]): number => {
      const n = table.flat().reduce((a, b) => a + b, 0);
      const pe = table[0]!.map((_, e) => table.reduce((s, row) => s + row[e]!, 0) / n);
      return table.reduce((sum, row) => {
        const pc = row.reduce((a, b) => a + b, 0) / n;
        return (
          sum +
          row.reduce((s, count, e) => {
            const p = count / n;
            return p > 0 ? s + p * Math.log(p / (pc * pe[e]!)) : s;
          }, 0)
        );
      }, 0);
    };
    const with_ = mi(slotsAfter(4));
    expect(with_).toBeGreaterThan(mi(slotsAfter(0)));
    expect(with_).toBeGreaterThan(0.8 * Math.log(3));
  });

  it('rejects a specialization weight that is not a number in range', () => {
    for (const bad of [Number.NaN, -1, 1e6]) {
      expect(() => tinyModel({ specializeWeight: bad })).toThrow(/specialize weight/);
    }
  });

  it('is repeatable: the same seed gives the same weights and the same losses', () => {
    const run = (): { losses: number[]; weights: Float32Array[] } => {
      const model = tinyModel({ seed: 3 });
      const losses = Array.from(
        { length: 5 },
        () => model.trainStep(x, y, { learningRate: 0.01 }).loss,
      );
      const weights = weightsOf(model, 'expert/1');
      model.dispose();
      return { losses, weights };
    };
    const a = run();
    const b = run();
    expect(b.losses).toEqual(a.losses);
    expect(b.weights).toEqual(a.weights);
    const other = tinyModel({ seed: 4 });
    expect(weightsOf(other, 'expert/1')).not.toEqual(weightsOf(tinyModel({ seed: 3 }), 'expert/1'));
    other.dispose();
  });

  it('changes only the trainable parts, leaving frozen ones bit-identical', () => {
    const model = tinyModel();
    const frozenBefore = [weightsOf(model, 'expert/0'), weightsOf(model, 'expert/2')];
    const trainedBefore = weightsOf(model, 'expert/1');
    const routerBefore = weightsOf(model, 'router');
    const trainable = new Set(['router', 'expert/1', 'expert/3'] as const);
    for (let i = 0; i < 5; i++) model.trainStep(x, y, { learningRate: 0.01, trainable });
    expect([weightsOf(model, 'expert/0'), weightsOf(model, 'expert/2')]).toEqual(frozenBefore);
    expect(weightsOf(model, 'expert/1')).not.toEqual(trainedBefore);
    expect(weightsOf(model, 'router')).not.toEqual(routerBefore);
    model.dispose();
  });

  it('rejects an impossible configuration with a clear message', () => {
    expect(() => tinyModel({ topK: 5 })).toThrow(/top-k must be between 1 and experts \(4\)/);
    expect(() => tinyModel({ preset: 'huge' })).toThrow(/unknown preset 'huge'/);
    expect(() => tinyModel({ numClasses: 1 })).toThrow(/numClasses/);
  });

  it('lists its parts and counts parameters', () => {
    expect(MoEModel.parts(3)).toEqual(['router', 'expert/0', 'expert/1', 'expert/2']);
    const model = tinyModel();
    const n = model.countParameters();
    expect(n.total).toBe(n.router + 4 * n.expert);
    expect(() => model.part('expert/9')).toThrow(/no expert\/9/);
    model.dispose();
  });

  it('uses cached logits for frozen experts with the same result as running them', () => {
    const model = tinyModel();
    const full = new Map([0, 2].map((e) => [e, model.expertLogits(e, x)] as const));
    const asked: number[] = [];
    const provider = (e: number, positions: Int32Array): tf.Tensor2D | undefined => {
      const logits = full.get(e);
      if (!logits) return undefined;
      asked.push(e);
      return tf.gather(logits, tf.tensor1d(positions, 'int32'));
    };
    const direct = model.predict(x);
    const cached = tf.tidy(() => model.forward(x, { expertLogits: provider }).logits);
    const a = direct.dataSync();
    const b = cached.dataSync();
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 4);
    expect(new Set(asked)).toEqual(new Set([0, 2]));
    tf.dispose([direct, cached, ...full.values()]);
    model.dispose();
  });

  it('never predicts a suppressed class, and exposes internal features before any mask', () => {
    const model = tinyModel();
    for (let i = 0; i < 20; i++) model.trainStep(x, y, { learningRate: 0.01 });
    const masked = model.predict(x, { suppressClasses: [1] });
    const predicted = Array.from(tf.argMax(masked, 1).dataSync());
    expect(predicted).not.toContain(1);
    expect(new Set(predicted).size).toBe(2);
    const features = model.internalFeatures(x);
    expect(features.shape).toEqual([48, model.router.featureSize + 4 * 3]);
    tf.dispose([masked, features]);
    model.dispose();
  });
});
