import * as tf from '@tensorflow/tfjs-core';
import { formatSampleId } from '@lethe/data';
import { ManifestStore, MemoryStore, sha256Hex } from '@lethe/store';
import { beforeAll, describe, expect, it } from 'vitest';
import { sisaOptions, train, useWasm } from './fixtures';
import {
  forgetSamples,
  listCheckpoints,
  planLayout,
  readLineageIndices,
  trainSisa,
  trainSisaModel,
  verifyForgetting,
  withoutSamples,
} from '../src';

beforeAll(useWasm);

const options = sisaOptions();
const recipe = options;

describe('sisa', () => {
  it('forgets samples by replay to the same weights as training without them, bit for bit', async () => {
    const store = new MemoryStore();
    const { layout } = await trainSisaModel(store, train, options);
    // Two samples of shard 1's middle slice: shard 0 must not be touched at all.
    const victims = layout.slots[1]![1]!.slice(0, 2);
    const ids = victims.map((i) => formatSampleId(train.name, 'train', i));
    const tensorsBefore = tf.memory().numTensors;
    const receipt = await forgetSamples(store, train, { requestId: 'erase-1', sampleIds: ids });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(receipt.mode).toBe('exact');
    expect(receipt.sisa.shards).toHaveLength(1);
    expect(receipt.sisa.shards[0]).toMatchObject({
      shard: 1,
      slicesReplayed: [1, 2],
      samplesRemoved: 2,
    });
    expect(receipt.weights.after['expert/0']).toBe(receipt.weights.before['expert/0']);

    // The oracle: a fresh store, the same layout without the samples, trained from scratch.
    const fresh = new MemoryStore();
    const oracle = await trainSisa(
      fresh,
      train,
      withoutSamples(
        planLayout(train, { shards: 2, slices: 3, assignment: 'uniform', seed: 3 }),
        new Set(victims),
      ),
      recipe,
    );
    const manifest = (await new ManifestStore(store).read())!;
    for (const shard of oracle.shards) {
      expect(manifest.objects[`expert/${shard.shard}`]!.sha256).toBe(
        shard.checkpoints.at(-1)!.weights.sha256,
      );
    }
    // Bit-identical on one engine (wasm runs one thread, in a fixed order): no tolerance needed.
    expect(manifest.objects['router']!.sha256).toBe(sha256Hex(oracle.router));

    // No stored checkpoint holds a forgotten sample, and verification agrees.
    for (const record of await listCheckpoints(store)) {
      const lineage = await readLineageIndices(store, record);
      expect(lineage.some((i) => victims.includes(i))).toBe(false);
    }
    const verdict = await verifyForgetting(store, 'erase-1');
    expect(verdict.problems).toEqual([]);
    expect(verdict.ok).toBe(true);

    // Idempotent by request id; a different request under the id is refused.
    expect(
      (await forgetSamples(store, train, { requestId: 'erase-1', sampleIds: ids })).createdAt,
    ).toBe(receipt.createdAt);
    await expect(
      forgetSamples(store, train, { requestId: 'erase-1', sampleIds: ids.slice(0, 1) }),
    ).rejects.toThrow(/different request/);
    await expect(
      forgetSamples(store, train, { requestId: 'erase-2', sampleIds: ids }),
    ).rejects.toThrow(/already forgotten/);
    await expect(
      forgetSamples(store, train, { requestId: 'erase-3', sampleIds: ['other:train:1'] }),
    ).rejects.toThrow(/not in the model's training set/);
  });

  it('verification catches a checkpoint that still holds a forgotten sample', async () => {
    const store = new MemoryStore();
    const { layout } = await trainSisaModel(store, train, { ...options, slices: 2 });
    const victim = layout.slots[0]![1]![0]!;
    const before = await listCheckpoints(store);
    await forgetSamples(store, train, {
      requestId: 'erase-1',
      sampleIds: [formatSampleId(train.name, 'train', victim)],
    });
    // Put one deleted checkpoint back, as a cache that forgot to forget would.
    const stale = before.find((r) => r.shard === 0 && r.slice === 1)!;
    await store.put(
      `sisa/checkpoints/${stale.lineage}.json`,
      new TextEncoder().encode(JSON.stringify(stale)),
    );
    const verdict = await verifyForgetting(store, 'erase-1');
    expect(verdict.ok).toBe(false);
    expect(verdict.problems.join('\n')).toMatch(
      /still holds a forgotten sample|missing|not found/i,
    );
  });

  it('plans layouts that keep every sample exactly once, balanced by class on request', () => {
    const uniform = planLayout(train, { shards: 3, slices: 2, assignment: 'uniform', seed: 1 });
    const all = uniform.slots.flat(2).sort((a, b) => a - b);
    expect(all).toEqual([...train.indices].sort((a, b) => a - b));
    const balanced = planLayout(train, {
      shards: 3,
      slices: 2,
      assignment: 'class-balanced',
      seed: 1,
    });
    const classCounts = (indices: number[]): number[] => {
      const counts = [0, 0, 0];
      for (const i of indices) counts[train.labels[train.indices.indexOf(i)]!]!++;
      return counts;
    };
    for (const shard of balanced.slots) {
      expect(classCounts(shard.flat())).toEqual([4, 4, 4]);
      // Slices too: a shard model trains slice by slice, so a slice of one class would skew it.
      for (const slice of shard) expect(classCounts(slice)).toEqual([2, 2, 2]);
    }
  });
});
