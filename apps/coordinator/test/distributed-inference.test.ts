import * as tf from '@tensorflow/tfjs-core';
import {
  channelStats,
  gatherBatch,
  limitTrainingSet,
  makeSyntheticDataset,
  type Dataset,
} from '@lethe/data';
import { initEngine } from '@lethe/engine';
import { MoEModel } from '@lethe/model';
import { toFloat32Tensor } from '@lethe/proto';
import { modelOutputs, OutputMemo } from '@lethe/unlearning';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateDistributed } from '../src/runners/distributed-inference';
import type { ExpertSession } from '../src/workers/expert-session';

beforeAll(() => initEngine({ engine: 'wasm', log: () => undefined }));

// A seeded subset, so positions and original indices differ, as on a limited training set.
const data = limitTrainingSet(
  makeSyntheticDataset({ perClass: 12, split: 'train', seed: 4, classes: 3, size: 16 }),
  24,
  2,
);
const normalise = channelStats(data);

function makeModel(): MoEModel {
  return new MoEModel({
    preset: 'tiny',
    experts: 3,
    topK: 2,
    numClasses: 3,
    inputShape: [16, 16, 3],
    routerNoise: 0.5,
    balanceWeight: 0.01,
    seed: 5,
  });
}

/**
 * A session whose "workers" are this process: each Forward gathers the samples by original
 * index, as a worker does from its copy of the data, and runs the model's own expert on them.
 */
function localSession(model: MoEModel, ds: Dataset): ExpertSession {
  const positionOf = new Map(Array.from(ds.indices, (index, p) => [index, p]));
  return {
    call: (expert: number, _method: unknown, request: { indices: number[] }) => {
      const batch = gatherBatch(
        ds,
        request.indices.map((i) => positionOf.get(i)!),
        { normalise },
      );
      const values = tf.tidy(() => {
        const x = tf.tensor4d(batch.x, [batch.size, 16, 16, 3]);
        return model.expertLogits(expert, x).dataSync() as Float32Array;
      });
      return Promise.resolve({
        logits: toFloat32Tensor(values, [batch.size, model.config.numClasses]),
      });
    },
  } as unknown as ExpertSession;
}

describe('evaluateDistributed', () => {
  it('records the raw outputs and chosen experts modelOutputs would, for the evaluated positions only', async () => {
    const model = makeModel();
    try {
      const session = localSession(model, data);
      const positions = Int32Array.from([0, 3, 4, 9, 10, 17, 23]);
      const memo = OutputMemo.for(data, 3, 2);
      // Suppressing a class masks the predictions, never what the memo keeps.
      const evaluation = await evaluateDistributed(model, session, 'train', data, normalise, {
        positions,
        memo,
        suppressClasses: [1],
        batchSize: 4,
      });
      const local = OutputMemo.for(data, 3, 2);
      const served = modelOutputs(model, data, normalise, {
        positions,
        memo: local,
        suppressClasses: [1],
      });
      expect(Array.from(memo.known)).toEqual(Array.from(local.known));
      expect(memo.count()).toBe(positions.length);
      expect(Array.from(memo.chosen)).toEqual(Array.from(local.chosen));
      expect(Array.from(memo.probs)).toEqual(Array.from(local.probs));
      // Raw: the suppressed class keeps its probability in the memo.
      const slot = data.indices[positions[0]!]!;
      expect(memo.probs[slot * 3 + 1]).toBeGreaterThan(0);

      expect(evaluation.samples).toBe(positions.length);
      const confusion = Array.from({ length: 3 }, () => [0, 0, 0]);
      served.labels.forEach((label, i) => confusion[label]![served.pred[i]!]!++);
      expect(evaluation.confusion).toEqual(confusion);
      expect(evaluation.confusion.every((row) => row[1] === 0)).toBe(true);
      expect(evaluation.routing).toEqual(served.routing);
    } finally {
      model.dispose();
    }
  });

  it('leaves no tensors behind, and refuses a memo of another shape', async () => {
    const model = makeModel();
    try {
      const session = localSession(model, data);
      const run = () =>
        evaluateDistributed(model, session, 'train', data, normalise, {
          memo: OutputMemo.for(data, 3, 2),
          suppressClasses: [2],
          batchSize: 8,
        });
      await run();
      const tensors = tf.memory().numTensors;
      await run();
      await run();
      expect(tf.memory().numTensors).toBe(tensors);
      await expect(
        evaluateDistributed(model, session, 'train', data, normalise, {
          memo: OutputMemo.for(data, 3, 1),
        }),
      ).rejects.toThrow(/another dataset or model shape/);
      await expect(
        evaluateDistributed(model, session, 'train', data, normalise, {
          memo: new OutputMemo(3, 3, 2),
        }),
      ).rejects.toThrow(/another dataset or model shape/);
    } finally {
      model.dispose();
    }
  });
});
