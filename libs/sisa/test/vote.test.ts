import * as tf from '@tensorflow/tfjs-core';
import { CIFAR10_STATS, gatherBatch, makeSyntheticDataset } from '@lethe/data';
import { loadModel } from '@lethe/model';
import { MemoryStore } from '@lethe/store';
import { beforeAll, describe, expect, it } from 'vitest';
import { config, sisaOptions, train, useWasm } from './fixtures';
import { evaluateVote, trainSisaModel } from '../src';

beforeAll(useWasm);

const test = makeSyntheticDataset({ perClass: 10, split: 'test', seed: 5, classes: 3 });
const options = sisaOptions({ slices: 2, epochsPerSlice: 2, routerFraction: 1 });

describe('evaluateVote', () => {
  it('scores the stored sisa model with uniform and accuracy-weighted votes', async () => {
    const store = new MemoryStore();
    await trainSisaModel(store, train, options);
    const tensors = tf.memory().numTensors;
    const uniform = await evaluateVote(store, test);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(uniform.aggregator).toBe('uniform');
    expect(uniform.count).toBe(test.size);
    expect(uniform.accuracy).toBeGreaterThanOrEqual(0);
    expect(uniform.accuracy).toBeLessThanOrEqual(1);
    expect(uniform.perClass).toHaveLength(3);
    expect(uniform.perClass.map((p) => p.total)).toEqual([10, 10, 10]);
    expect(uniform.weights).toEqual([0.5, 0.5]);
    expect(uniform.heldOut).toBe(0);

    const weighted = await evaluateVote(store, test, { weighted: true });
    expect(weighted.aggregator).toBe('weighted');
    expect(weighted.heldOut).toBeGreaterThan(0);
    expect(weighted.count + weighted.heldOut).toBe(test.size);
    expect(weighted.accuracy).toBeGreaterThanOrEqual(0);
    expect(weighted.accuracy).toBeLessThanOrEqual(1);
    expect(weighted.perClass).toHaveLength(3);
    expect(weighted.expertAccuracy).toHaveLength(2);
    expect(weighted.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
    for (const w of weighted.weights) expect(w).toBeGreaterThanOrEqual(0);

    // An explicit validation set: every test sample is scored.
    const validated = await evaluateVote(store, test, { weighted: true, validation: train });
    expect(validated.count).toBe(test.size);
    expect(validated.heldOut).toBe(train.size);
  });

  it('with one shard, the uniform vote is that expert’s own argmax', async () => {
    const store = new MemoryStore();
    await trainSisaModel(store, train, { ...options, config: { ...config, experts: 1 } });
    const vote = await evaluateVote(store, test);
    const { model } = await loadModel(store);
    try {
      const batch = gatherBatch(test, vote.positions, { normalise: CIFAR10_STATS });
      const own = tf.tidy(() =>
        tf.argMax(model.expertLogits(0, tf.tensor4d(batch.x, [batch.size, 32, 32, 3])), 1),
      );
      expect([...vote.predictions]).toEqual([...(own.dataSync() as Int32Array)]);
      own.dispose();
    } finally {
      model.dispose();
    }
    const correct = [...vote.positions].filter((p, i) => vote.predictions[i] === test.labels[p]);
    expect(vote.correct).toBe(correct.length);
    expect(vote.weights).toEqual([1]);
  });

  it('refuses a store without a sisa model', async () => {
    await expect(evaluateVote(new MemoryStore(), test)).rejects.toThrow(/no trained model/);
  });
});
