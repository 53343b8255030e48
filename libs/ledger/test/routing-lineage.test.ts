import { formatSampleId, makeSyntheticDataset } from '@lethe/data';
import { ManifestStore, MemoryStore } from '@lethe/store';
import { describe, expect, it } from 'vitest';
import {
  buildRoster,
  expertsThatSaw,
  readRoutingLineage,
  ROUTING_LINEAGE_OBJECT,
  routedExperts,
  RoutingLineageRecorder,
  storeRoutingLineage,
} from '../src';

const train = makeSyntheticDataset({ perClass: 2, split: 'train', seed: 1, classes: 2 });
const roster = buildRoster(train);
const id = (i: number): string => formatSampleId(train.name, 'train', i);

describe('routing lineage', () => {
  it('keeps, per epoch and sample, the experts it was routed to, and survives the store', async () => {
    const recorder = new RoutingLineageRecorder(train.size, 10);
    // Epoch 0: samples 2 and 0 with top-2 routing; epoch 1: sample 2 alone, to expert 9.
    recorder.record(0, [2, 0], [1, 3, 0, 1]);
    recorder.record(1, [2], [9, 9]);
    const store = new MemoryStore();
    const ref = await storeRoutingLineage(store, recorder.toRecord());
    await new ManifestStore(store).update((d) => void (d.objects[ROUTING_LINEAGE_OBJECT] = ref));
    const lineage = (await readRoutingLineage(store))!;
    expect(routedExperts(lineage, 2)).toEqual([[1, 3], [9]]);
    expect(routedExperts(lineage, 0)).toEqual([[0, 1], []]);
    expect(routedExperts(lineage, 1)).toEqual([[], []]);
    expect(expertsThatSaw(roster, lineage, [id(2), id(0)])).toEqual([0, 1, 3, 9]);
    expect(expertsThatSaw(roster, lineage, [id(1)])).toEqual([]);
    expect(() => expertsThatSaw(roster, lineage, ['shapes:train:77'])).toThrow(
      /sample shapes:train:77 is not in the model's training set/,
    );
  });

  it('resumes from a record: epochs recorded before and after equal one uninterrupted record', () => {
    const whole = new RoutingLineageRecorder(train.size, 3);
    whole.record(0, [0, 1], [0, 1, 1, 2]);
    const interrupted = new RoutingLineageRecorder(train.size, 3);
    interrupted.record(0, [0, 1], [0, 1, 1, 2]);
    const resumed = RoutingLineageRecorder.fromRecord(interrupted.toRecord());
    whole.record(1, [3], [2, 0]);
    resumed.record(1, [3], [2, 0]);
    expect(resumed.toRecord()).toEqual(whole.toRecord());
    expect(() =>
      RoutingLineageRecorder.fromRecord({ ...whole.toRecord(), epochs: ['AAAA'] }),
    ).toThrow(/does not hold/);
  });

  it('refuses more experts than a bitset holds', () => {
    expect(() => new RoutingLineageRecorder(4, 65)).toThrow(RangeError);
  });
});
