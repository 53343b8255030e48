import { formatSampleId, makeSyntheticDataset } from '@lethe/data';
import { ManifestStore, MemoryStore, type ObjectRef, putContent } from '@lethe/store';
import { describe, expect, it } from 'vitest';
import {
  appendErasures,
  dropErasure,
  erasedOf,
  excludeErased,
  honourLedger,
  LEDGER_OBJECT,
  type Ledger,
  LedgerError,
  parseSubjectTable,
  readLedger,
  revisionHonouring,
} from '../src';

const train = makeSyntheticDataset({ perClass: 4, split: 'train', seed: 1, classes: 3 });
const id = (i: number): string => formatSampleId(train.name, 'train', i);

async function receipt(store: MemoryStore, requestId: string): Promise<ObjectRef> {
  return putContent(store, new TextEncoder().encode(requestId), { kind: 'receipt' });
}

/** Appends one erasure and publishes it with its receipt, as a forget does. */
async function erase(
  store: MemoryStore,
  requestId: string,
  what: { classes?: string[]; sampleIds?: string[]; subjects?: string[] },
): Promise<Ledger> {
  const manifests = new ManifestStore(store);
  const manifest = await manifests.read();
  const ledger = await readLedger(store, manifest);
  const ref = await receipt(store, requestId);
  const next = await appendErasures(store, ledger, [
    { requestId, receipt: ref, mode: 'exact', ...what },
  ]);
  await manifests.update(
    (draft) => {
      draft.objects[`receipt/${requestId}`] = ref;
      draft.objects[LEDGER_OBJECT] = next;
    },
    { expectRevision: manifest?.revision ?? 0 },
  );
  return readLedger(store);
}

describe('erasure ledger', () => {
  it('is empty in a new store and appends events that chain to the version before', async () => {
    const store = new MemoryStore();
    expect((await readLedger(store)).document.events).toEqual([]);
    const first = await erase(store, 'r1', { classes: ['circle'] });
    const second = await erase(store, 'r2', { sampleIds: [id(3), id(1), id(3)] });
    expect(second.document.previous).toBe(first.ref!.sha256);
    expect(second.document.events.map((e) => [e.seq, e.requestId])).toEqual([
      [1, 'r1'],
      [2, 'r2'],
    ]);
    const erased = erasedOf(second);
    expect([...erased.classes]).toEqual(['circle']);
    expect([...erased.sampleIds]).toEqual([id(1), id(3)]);
  });

  it('refuses a damaged ledger document', async () => {
    const store = new MemoryStore();
    const bad = await putContent(store, new TextEncoder().encode('{"schema":1,"events":[{}]}'), {
      kind: 'ledger',
    });
    await new ManifestStore(store).update((d) => void (d.objects[LEDGER_OBJECT] = bad));
    await expect(readLedger(store)).rejects.toThrow(/malformed erasure ledger/);
  });

  it('drops an erasure only by an operator action that stays in the ledger', async () => {
    const store = new MemoryStore();
    await erase(store, 'r1', { classes: ['circle'] });
    await expect(dropErasure(store, { requestId: 'nope', reason: 'x', by: 'ops' })).rejects.toThrow(
      /no erasure with request id nope/,
    );
    await expect(dropErasure(store, { requestId: 'r1', reason: ' ', by: 'ops' })).rejects.toThrow(
      LedgerError,
    );
    const { event } = await dropErasure(store, {
      requestId: 'r1',
      reason: 'legal hold lifted',
      by: 'ops',
    });
    expect(event).toMatchObject({ kind: 'drop', seq: 2, reason: 'legal hold lifted', by: 'ops' });
    const ledger = await readLedger(store);
    expect(ledger.document.events).toHaveLength(2);
    expect(erasedOf(ledger).classes.size).toBe(0);
    await expect(dropErasure(store, { requestId: 'r1', reason: 'x', by: 'ops' })).rejects.toThrow(
      /already dropped/,
    );
  });
});

describe('honouring the ledger', () => {
  it('excludes erased classes, samples and subjects, and counts ids it does not hold', async () => {
    const store = new MemoryStore();
    const subjects = parseSubjectTable(
      new TextEncoder().encode(`sample,subject\n${id(0)},ann\n${id(1)},ann\n${id(2)},bob\n`),
      'subjects.csv',
    );
    await erase(store, 'r1', { classes: [train.classes[2]!] });
    await erase(store, 'r2', { sampleIds: [id(5), 'cifar10:train:9'] });
    await erase(store, 'r3', { subjects: ['ann'] });
    const { train: kept, honoured } = await honourLedger(store, train, subjects);
    const classTwo = Array.from(train.labels).filter((l) => l === 2).length;
    const dropped = new Set([0, 1, 5]);
    const expected = Array.from(train.indices).filter(
      (index, p) => train.labels[p] !== 2 && !dropped.has(index),
    );
    expect(Array.from(kept.indices)).toEqual(expected);
    expect(honoured.excluded).toEqual({
      samples: classTwo + [0, 1, 5].filter((i) => train.labels[i] !== 2).length,
      classes: [train.classes[2]],
      subjects: ['ann'],
    });
    expect(honoured.notInTrainingSet).toBe(1);
    expect(honoured.events).toBe(3);
  });

  it('keeps the dataset object when nothing is erased', () => {
    const erased = erasedOf({
      document: { schema: 1, previous: null, events: [] },
      ref: undefined,
    });
    expect(excludeErased(train, erased).train).toBe(train);
  });

  it('refuses to publish a training when an erasure landed meanwhile', async () => {
    const store = new MemoryStore();
    const { honoured } = await honourLedger(store, train);
    expect(await revisionHonouring(store, honoured)).toBe(0);
    await erase(store, 'r1', { sampleIds: [id(0)] });
    await expect(revisionHonouring(store, honoured)).rejects.toThrow(
      /ledger changed while training/,
    );
  });
});
