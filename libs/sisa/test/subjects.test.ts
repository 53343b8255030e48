import { parseSubjectTable, readLedger, readRoster } from '@lethe/ledger';
import { ManifestStore, MemoryStore } from '@lethe/store';
import { beforeAll, describe, expect, it } from 'vitest';
import { sampleIdOf, sisaOptions, train, useWasm } from './fixtures';
import { forgetSamples, loadSisa, SisaRequestError, slotsByIndex, trainSisaModel } from '../src';

beforeAll(useWasm);

// Subject "ann" owns samples 0, 5 and 9; "bob" owns 1.
const subjects = parseSubjectTable(
  new TextEncoder().encode(
    `sample,subject\n${[0, 5, 9].map((i) => `${sampleIdOf(i)},ann`).join('\n')}\n${sampleIdOf(1)},bob\n`,
  ),
  'subjects.csv',
);
const annIds = [0, 5, 9].map(sampleIdOf);

describe('forgetting a data subject on a sisa model', () => {
  it('replays without their samples, records the subject, and honours it at the next training', async () => {
    const store = new MemoryStore();
    await trainSisaModel(store, train, sisaOptions({ subjects }));
    const record = (await new ManifestStore(store).read())!.attributes['training'] as {
      subjects: unknown;
    };
    expect(record.subjects).toEqual({ table: subjects.sha256, subjects: 2, samplesWithSubject: 4 });
    expect((await readRoster(store))!.subjects!.filter((s) => s === 'ann')).toHaveLength(3);

    const request = { requestId: 'erase-ann', sampleIds: annIds, subjects: ['ann'] };
    const receipt = await forgetSamples(store, train, request);
    expect(receipt.request).toEqual({ kind: 'samples', sampleIds: annIds, subjects: ['ann'] });
    const ledger = await readLedger(store);
    expect(ledger.document.events).toEqual([
      expect.objectContaining({
        requestId: 'erase-ann',
        mode: 'exact',
        subjects: ['ann'],
        sampleIds: annIds,
      }),
    ]);

    // The same request id: the first receipt. A new one: already forgotten, nothing changed.
    expect(await forgetSamples(store, train, request)).toEqual(receipt);
    const revision = (await new ManifestStore(store).read())!.revision;
    const again = forgetSamples(store, train, { ...request, requestId: 'erase-ann-2' });
    await expect(again).rejects.toThrow(SisaRequestError);
    await expect(again).rejects.toThrow(
      /subject ann, erased by request erase-ann, is already forgotten/,
    );
    expect((await new ManifestStore(store).read())!.revision).toBe(revision);

    // A new training on the store: the subject's samples are in no shard.
    await trainSisaModel(store, train, sisaOptions({ subjects }));
    const { layout } = await loadSisa(store);
    const slots = slotsByIndex(layout);
    expect([0, 5, 9].filter((i) => slots.has(i))).toEqual([]);
    expect(slots.size).toBe(train.size - 3);
    const retrained = (await new ManifestStore(store).read())!.attributes['training'] as {
      ledger: { sha256: string; excluded: { samples: number; subjects: string[] } };
    };
    expect(retrained.ledger.sha256).toBe(ledger.ref!.sha256);
    expect(retrained.ledger.excluded).toEqual({ samples: 3, classes: [], subjects: ['ann'] });
  });
});
