import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  IntegrityError,
  ManifestStore,
  MemoryStore,
  type ObjectStore,
  putContent,
} from '@lethe/store';
import { describe, expect, it } from 'vitest';
import {
  isClassReceipt,
  isSampleForgetReceipt,
  isSisaReceipt,
  listReceipts,
  parseReceipt,
  readReceipt,
  receiptKind,
  receiptObjectName,
  sameRequest,
  storeReceipt,
  type StoredReceipt,
} from '../src';

// Receipts as the writers before the one schema stored them: libs/unlearning's class and sample
// forgets pretty-printed, libs/sisa's replay compact. NaN measurements were written as null.
const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(__dirname, 'fixtures', name), 'utf8')) as Record<string, unknown>;
const CLASS = fixture('class-receipt.json');
const SAMPLES = fixture('sample-receipt.json');
const SISA = fixture('sisa-receipt.json');
const asWritten = {
  'forget-cat': `${JSON.stringify(CLASS, null, 2)}\n`,
  'forget-ann': `${JSON.stringify(SAMPLES, null, 2)}\n`,
  'forget-bob': JSON.stringify(SISA),
};

/** Publishes raw receipt bytes under `receipt/<id>`, as the old writers did. */
async function publishRaw(store: ObjectStore, receipts: Record<string, string>): Promise<void> {
  const refs = Object.fromEntries(
    await Promise.all(
      Object.entries(receipts).map(async ([id, text]) => [
        receiptObjectName(id),
        await putContent(store, new TextEncoder().encode(text), { kind: 'receipt' }),
      ]),
    ),
  );
  await new ManifestStore(store).update((d) => void Object.assign(d.objects, refs));
}

describe('stored receipts', () => {
  it('reads a receipt of each kind as the writers stored it, narrowed by its kind', async () => {
    const store = new MemoryStore();
    await publishRaw(store, asWritten);

    const cls = await readReceipt(store, 'forget-cat');
    if (!cls || !isClassReceipt(cls)) throw new Error('expected a class receipt');
    expect(receiptKind(cls)).toBe('class');
    expect(cls.request.className).toBe('cat');
    expect(cls.plan.experts).toEqual([0]);
    expect(cls.metrics.after.featureProbeHeldOutAccuracy).toBe(62.5);
    expect('featureProbeHeldOutAccuracy' in cls.metrics.before).toBe(false);
    // null in the JSON is the NaN the writer measured (a class without test samples).
    expect(cls.metrics.before.perClassTest[2]).toBeNaN();
    expect(cls.history[1]!.loss).toBeNaN();
    // Every field the writer stored comes back, in the order it was stored.
    expect(JSON.stringify(cls, null, 2) + '\n').toBe(asWritten['forget-cat']);

    const samples = await readReceipt(store, 'forget-ann');
    if (!samples || !isSampleForgetReceipt(samples)) throw new Error('expected a sample receipt');
    expect(samples.request.subjects).toEqual(['ann']);
    expect(samples.metrics.after.ra).toBeNaN();
    expect(samples.plan.seenBy).toEqual([0, 2, 1, 0]);

    const sisa = await readReceipt(store, 'forget-bob');
    if (!sisa || !isSisaReceipt(sisa)) throw new Error('expected a sisa receipt');
    expect(sisa.request.sampleIds).toEqual(['shapes:train:4']);
    expect(sisa.sisa.shards[0]!.slicesReplayed).toEqual([1]);
    expect(JSON.stringify(sisa)).toBe(asWritten['forget-bob']);

    expect(await readReceipt(store, 'no-such-request')).toBeUndefined();
    const all = await listReceipts(store);
    expect(all.map((r) => [r.requestId, receiptKind(r)])).toEqual([
      ['forget-bob', 'sisa'],
      ['forget-cat', 'class'],
      ['forget-ann', 'samples'],
    ]);
    expect(await listReceipts(new MemoryStore())).toEqual([]);
  });

  it('stores what it reads: the one writer takes every kind and the reader gets it back', async () => {
    const from = new MemoryStore();
    await publishRaw(from, asWritten);
    const to = new MemoryStore();
    const receipts = await listReceipts(from);
    const refs = await Promise.all(receipts.map((r) => storeReceipt(to, r)));
    await new ManifestStore(to).update((d) => {
      receipts.forEach((r, i) => (d.objects[receiptObjectName(r.requestId)] = refs[i]!));
    });
    const again = await listReceipts(to);
    // NaN is not equal to itself under JSON; compare as stored.
    expect(JSON.stringify(again)).toBe(JSON.stringify(receipts));
  });

  it('keeps a top-level field a newer writer added', async () => {
    const store = new MemoryStore();
    await publishRaw(store, {
      'forget-bob': JSON.stringify({ ...SISA, attestation: { by: 'a later version' } }),
    });
    const receipt = (await readReceipt(store, 'forget-bob')) as StoredReceipt &
      Record<string, unknown>;
    expect(receipt['attestation']).toEqual({ by: 'a later version' });
  });

  it('refuses a malformed receipt with an IntegrityError naming its key and the field', async () => {
    const metrics = CLASS['metrics'] as { before: Record<string, unknown>; after: unknown };
    const broken = { ...CLASS, metrics: { ...metrics, before: { ...metrics.before, ua: 'high' } } };
    const store = new MemoryStore();
    await publishRaw(store, { 'forget-cat': JSON.stringify(broken) });
    const ref = (await new ManifestStore(store).read())!.objects['receipt/forget-cat']!;
    const error = await readReceipt(store, 'forget-cat').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toContain(ref.key);
    expect((error as Error).message).toMatch(
      /malformed receipt forget-cat: metrics\.before\.ua: .*expected number.*\(class receipt\)/,
    );
    await expect(listReceipts(store)).rejects.toThrow(/metrics\.before\.ua/);

    for (const [value, reason] of [
      [{ ...SISA, mode: 'guessed' }, /mode: /],
      [{ ...SISA, request: { kind: 'class', sampleIds: [] } }, /request\.kind: .*\(sisa receipt\)/],
      [
        { ...SAMPLES, request: { ...(SAMPLES['request'] as object), method: 'forget-it' } },
        /request\.method/,
      ],
      [{ ...SISA, schema: 2 }, /schema: .*\(sisa receipt\)/],
    ] as const) {
      const bad = new MemoryStore();
      await publishRaw(bad, { 'forget-x': JSON.stringify(value) });
      await expect(readReceipt(bad, 'forget-x')).rejects.toThrow(reason);
    }
    const notJson = new MemoryStore();
    await publishRaw(notJson, { 'forget-x': '{"schema": 1,' });
    await expect(readReceipt(notJson, 'forget-x')).rejects.toThrow(
      /receipt forget-x is not valid JSON/,
    );
  });

  it('refuses to store a receipt its reader would refuse, and writes nothing', async () => {
    const store = new MemoryStore();
    const bad = { ...parseReceipt(SISA), checkpointsDeleted: -1 } as StoredReceipt;
    await expect(storeReceipt(store, bad)).rejects.toThrow(
      /receipt forget-bob does not match its schema: checkpointsDeleted: .*\(sisa receipt\)/,
    );
    expect(await store.list('')).toEqual([]);
  });

  it('parses a receipt from elsewhere (a file) with the same schema', () => {
    expect(receiptKind(parseReceipt(CLASS))).toBe('class');
    expect(() => parseReceipt({ ...CLASS, plan: undefined })).toThrow(
      /not a receipt: plan: .*\(class receipt\)/,
    );
    expect(() => parseReceipt([1, 2])).toThrow(/not a receipt: .*\(receipt\)/);
  });

  it('compares request records whatever the order of their keys', () => {
    expect(
      sameRequest({ a: 1, b: { c: [1, 2], d: 'x' } }, { b: { d: 'x', c: [1, 2] }, a: 1 }),
    ).toBe(true);
    expect(sameRequest({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [2, 1] } })).toBe(false);
    expect(sameRequest({ a: 1 }, { a: 1, b: 2 })).toBe(false);
  });
});
