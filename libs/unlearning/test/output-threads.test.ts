import { channelStats, makeSyntheticDataset } from '@lethe/data';
import { initEngine } from '@lethe/engine';
import { MoEModel } from '@lethe/model';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { fillMemosInThreads, modelOutputs, OutputMemo } from '../src';

const train = makeSyntheticDataset({ perClass: 400, split: 'train', seed: 3, classes: 4 });
const test = makeSyntheticDataset({ perClass: 400, split: 'test', seed: 3, classes: 4 });
const normalise = channelStats(train);
const config = {
  preset: 'tiny',
  experts: 4,
  topK: 2,
  numClasses: 4,
  inputShape: [32, 32, 3] as [number, number, number],
  routerNoise: 1,
  balanceWeight: 0.1,
  seed: 4,
};

beforeAll(async () => {
  await initEngine({ log: () => undefined });
});

describe('measuring in worker threads', () => {
  it('fills the memos with exactly the outputs one thread computes', async () => {
    const model = new MoEModel(config);
    try {
      // Every other training sample (some already known), and the whole test split.
      const positions = Int32Array.from({ length: train.size / 2 }, (_, i) => 2 * i);
      const all = Int32Array.from({ length: test.size }, (_, i) => i);
      const memos = {
        train: OutputMemo.for(train, 4, 2),
        test: OutputMemo.for(test, 4, 2),
      };
      modelOutputs(model, train, normalise, {
        positions: positions.subarray(0, 10),
        memo: memos.train,
      });
      const tensors = tf.memory().numTensors;
      const used = await fillMemosInThreads(
        model,
        normalise,
        [
          { ds: train, memo: memos.train, positions },
          { ds: test, memo: memos.test, positions: all },
        ],
        3,
      );
      expect(used).toBe(2);
      expect(tf.memory().numTensors).toBe(tensors);
      expect(memos.train.count()).toBe(positions.length);
      expect(memos.test.count()).toBe(test.size);
      const alone = { train: OutputMemo.for(train, 4, 2), test: OutputMemo.for(test, 4, 2) };
      modelOutputs(model, train, normalise, { positions, memo: alone.train });
      modelOutputs(model, test, normalise, { memo: alone.test });
      for (const split of ['train', 'test'] as const) {
        expect(memos[split].chosen).toEqual(alone[split].chosen);
        const a = memos[split].probs;
        const b = alone[split].probs;
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        expect(worst).toBeLessThan(1e-5);
      }
    } finally {
      model.dispose();
    }
  }, 120_000);

  it('leaves a small measurement to the caller', async () => {
    const model = new MoEModel(config);
    try {
      const memo = OutputMemo.for(test, 4, 2);
      const few = Int32Array.from({ length: 500 }, (_, i) => i);
      expect(
        await fillMemosInThreads(model, normalise, [{ ds: test, memo, positions: few }], 4),
      ).toBe(0);
      expect(memo.count()).toBe(0);
    } finally {
      model.dispose();
    }
  });

  it('leaves the work to the caller when a thread fails, saying why', async () => {
    const model = new MoEModel(config);
    try {
      // Weights that do not fit the configuration the thread rebuilds (5 classes, not 4).
      const misfit = { config: { ...config, numClasses: 5 }, part: model.part.bind(model) };
      const memo = OutputMemo.for(test, 4, 2);
      const all = Int32Array.from({ length: test.size }, (_, i) => i);
      const notes: string[] = [];
      const used = await fillMemosInThreads(
        misfit as unknown as MoEModel,
        normalise,
        [
          { ds: test, memo, positions: all },
          {
            ds: train,
            memo: OutputMemo.for(train, 4, 2),
            positions: Int32Array.from({ length: train.size }, (_, i) => i),
          },
        ],
        2,
        (m) => notes.push(m),
      );
      expect(used).toBe(0);
      expect(memo.count()).toBe(0);
      expect(notes).toEqual([expect.stringMatching(/^note: measuring in one thread/)]);
    } finally {
      model.dispose();
    }
  }, 120_000);
});
