import { getVerified, ManifestStore, MemoryStore, sha256Hex } from '@lethe/store';
import { beforeAll, describe, expect, it } from 'vitest';
import { sampleIdOf, sisaOptions, train, useWasm } from './fixtures';
import {
  listCheckpoints,
  planLayout,
  readLineageIndices,
  type SisaReceipt,
  SisaForgetQueue,
  trainSisa,
  trainSisaModel,
  verifyForgetting,
  withoutSamples,
} from '../src';

beforeAll(useWasm);

const options = sisaOptions();
const recipe = options;
const id = sampleIdOf;

describe('SisaForgetQueue', () => {
  it('batches the requests that arrive during a replay into one replay and one revision', async () => {
    const store = new MemoryStore();
    const { layout, manifest: trained } = await trainSisaModel(store, train, options);
    const first = [layout.slots[1]![1]![0]!];
    // Three requests for the next batch: both shards, one sample named twice across requests.
    const a = [layout.slots[0]![2]![0]!];
    const b = [layout.slots[1]![2]![0]!, layout.slots[0]![0]![1]!];
    const c = [layout.slots[0]![0]![1]!];
    const all = new Set([...first, ...a, ...b, ...c]);

    const batches: string[][] = [];
    const later: Promise<SisaReceipt>[] = [];
    let refusedBad: Promise<unknown> | undefined;
    let refusedDuplicate: Promise<unknown> | undefined;
    const queue = new SisaForgetQueue(store, train, {
      windowMs: 0,
      onBatch: (ids) => batches.push([...ids]),
      onProgress: () => {
        // On the first replay's first step, while it runs: these all wait for the next batch.
        if (later.length > 0) return;
        expect(queue.busy).toBe(true);
        later.push(
          queue.submit({ requestId: 'a', sampleIds: a.map(id) }),
          queue.submit({ requestId: 'b', sampleIds: b.map(id) }),
          queue.submit({ requestId: 'c', sampleIds: c.map(id) }),
        );
        // A bad request and a reused id with other samples fail alone; the same id with the same
        // samples shares the receipt.
        refusedBad = queue.submit({ requestId: 'bad', sampleIds: ['other:train:1'] });
        refusedDuplicate = queue.submit({ requestId: 'a', sampleIds: b.map(id) });
        later.push(queue.submit({ requestId: 'c', sampleIds: c.map(id) }));
        refusedBad.catch(() => undefined);
        refusedDuplicate.catch(() => undefined);
      },
    });
    const firstReceipt = await queue.submit({ requestId: 'first', sampleIds: first.map(id) });
    const [ra, rb, rc, rcAgain] = await Promise.all(later);
    await expect(refusedBad).rejects.toThrow(/not in the model's training set/);
    await expect(refusedDuplicate).rejects.toMatchObject({ code: 'already-exists' });

    // Two replays for six submissions, two manifest revisions after training.
    expect(batches).toEqual([['first'], ['a', 'b', 'c', 'bad', 'a', 'c']]);
    expect(queue.replays).toBe(2);
    expect(queue.replays).toBeLessThan(4);
    const manifest = (await new ManifestStore(store).read())!;
    expect(manifest.revision).toBe(trained.revision + 2);
    expect(firstReceipt.manifest).toEqual({
      before: trained.revision,
      after: trained.revision + 1,
    });
    expect(firstReceipt.batch).toMatchObject({ requestIds: ['first'], samples: 1 });
    for (const [receipt, requestId, samples] of [
      [ra, 'a', a],
      [rb, 'b', b],
      [rc, 'c', c],
    ] as const) {
      expect(receipt!.requestId).toBe(requestId);
      expect(receipt!.request.sampleIds).toEqual(samples.map(id).sort());
      expect(receipt!.manifest).toEqual({
        before: trained.revision + 1,
        after: trained.revision + 2,
      });
      expect(receipt!.batch).toMatchObject({ requestIds: ['a', 'b', 'c'], samples: 3 });
      // Each request's own receipt is published, under its own id, in that one revision.
      const stored = await getVerified(store, manifest.objects[`receipt/${requestId}`]!);
      expect(JSON.parse(new TextDecoder().decode(stored))).toEqual(receipt);
      expect((await verifyForgetting(store, requestId)).ok).toBe(true);
    }
    expect(rcAgain).toEqual(rc);
    expect(manifest.objects['receipt/first']).toBeDefined();
    expect(ra!.sisa.shards.map((s) => s.shard)).toEqual([0, 1]);

    // The merged replay equals fresh training on the layout without every forgotten sample.
    const oracle = await trainSisa(
      new MemoryStore(),
      train,
      withoutSamples(
        planLayout(train, { shards: 2, slices: 3, assignment: 'uniform', seed: 3 }),
        all,
      ),
      recipe,
    );
    for (const shard of oracle.shards) {
      expect(manifest.objects[`expert/${shard.shard}`]!.sha256).toBe(
        shard.checkpoints.at(-1)!.weights.sha256,
      );
    }
    expect(manifest.objects['router']!.sha256).toBe(sha256Hex(oracle.router));
    for (const record of await listCheckpoints(store)) {
      const lineage = await readLineageIndices(store, record);
      expect(lineage.some((i) => all.has(i))).toBe(false);
    }

    // A completed request id resubmitted gets its stored receipt, without a replay.
    expect(await queue.submit({ requestId: 'b', sampleIds: b.map(id) })).toEqual(rb);
    await expect(queue.submit({ requestId: 'late', sampleIds: a.map(id) })).rejects.toThrow(
      /already forgotten/,
    );
    expect(queue.replays).toBe(2);
    expect((await new ManifestStore(store).read())!.revision).toBe(trained.revision + 2);
  });

  it('keeps a batch open for windowMs after its first request', async () => {
    const store = new MemoryStore();
    const { layout } = await trainSisaModel(store, train, { ...options, slices: 1 });
    const batches: string[][] = [];
    const queue = new SisaForgetQueue(store, train, {
      windowMs: 50,
      onBatch: (ids) => batches.push([...ids]),
    });
    const p1 = queue.submit({ requestId: 'x', sampleIds: [id(layout.slots[0]![0]![0]!)] });
    await new Promise((resolve) => setTimeout(resolve, 10));
    const p2 = queue.submit({ requestId: 'y', sampleIds: [id(layout.slots[1]![0]![0]!)] });
    const [x, y] = await Promise.all([p1, p2]);
    expect(batches).toEqual([['x', 'y']]);
    expect(x.manifest).toEqual(y.manifest);
    expect(queue.replays).toBe(1);
    expect(() => new SisaForgetQueue(store, train, { windowMs: -1 })).toThrow(/forget window/);
  });
});
