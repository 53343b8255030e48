import { makeSyntheticDataset } from '@lethe/data';
import { initEngine } from '@lethe/engine';
import { readRoster, readRoutingLineage, routedExperts } from '@lethe/ledger';
import type { EpochSummary } from '@lethe/model';
import { MemoryStore } from '@lethe/store';
import { beforeAll, describe, expect, it } from 'vitest';
import { runTrainJob } from '../src/jobs/train-job';

const train = makeSyntheticDataset({ perClass: 20, split: 'train', seed: 2, classes: 3 });

beforeAll(async () => {
  await initEngine({ engine: 'wasm', log: () => undefined });
});

describe('routing lineage of joint training', () => {
  it('records, per sample and epoch, the experts it was routed to, as the trainer counted them', async () => {
    const store = new MemoryStore();
    const summaries: EpochSummary[] = [];
    await runTrainJob({
      data: { train },
      store,
      preset: 'tiny',
      experts: 4,
      topK: 2,
      epochs: 2,
      batchSize: 16,
      learningRate: 0.01,
      weightDecay: 0,
      schedule: 'constant',
      seed: 3,
      augment: false,
      balanceWeight: 0.1,
      routerNoise: 1,
      specializeWeight: 0,
      onEpoch: (s) => summaries.push(s),
    });
    const lineage = (await readRoutingLineage(store))!;
    const roster = (await readRoster(store))!;
    expect(lineage).toMatchObject({ experts: 4, samples: train.size });
    expect(lineage.epochs).toHaveLength(2);
    const visited = Math.floor(train.size / 16) * 16;
    for (const [epoch, summary] of summaries.entries()) {
      const perSample = roster.indices.map((_, p) => routedExperts(lineage, p)[epoch]!);
      // Every sample a step visited has its k experts; the ones dropLast left out have none.
      expect(perSample.filter((e) => e.length === 2)).toHaveLength(visited);
      expect(perSample.filter((e) => e.length === 0)).toHaveLength(train.size - visited);
      // The class × expert table the trainer reports is the lineage summed by class.
      const table = summary.routing.map((row) => row.map(() => 0));
      perSample.forEach((experts, p) => experts.forEach((e) => table[roster.labels[p]!]![e]!++));
      expect(table).toEqual(summary.routing);
    }
  });
});
