import { LocalDirStore, ManifestStore, MemoryStore, type ObjectStore } from '@lethe/store';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { sampleIdOf, sisaOptions, train, useWasm } from './fixtures';
import {
  ForgetCancelledError,
  type ForgetClock,
  ForgetWindow,
  forgetSamples,
  loadSisa,
  MAX_FORGET_WINDOW_MS,
  planSisaForget,
  planSisaReplay,
  type SisaReceipt,
  SisaForgetQueue,
  trainSisaModel,
} from '../src';

beforeAll(useWasm);

const id = sampleIdOf;
const HOUR = 3_600_000;

/** A clock that moves only when the test says so; due timers fire in time order. */
class FakeClock implements ForgetClock {
  time = 1_000_000;
  #timers: { due: number; fn: () => void; live: boolean }[] = [];
  now(): number {
    return this.time;
  }
  setTimer(fn: () => void, ms: number): () => void {
    const timer = { due: this.time + ms, fn, live: true };
    this.#timers.push(timer);
    return () => (timer.live = false);
  }
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const next = this.#timers
        .filter((t) => t.live && t.due <= until)
        .sort((a, b) => a.due - b.due)[0];
      if (!next) break;
      this.time = next.due;
      next.live = false;
      next.fn();
    }
    this.time = until;
  }
}

/** Every object's key and hash, and the manifest revision: what "nothing changed" compares. */
async function snapshot(store: ObjectStore): Promise<string> {
  const keys = (await store.list('')).map((o) => o.key).sort();
  const manifest = await new ManifestStore(store).read();
  return JSON.stringify({ keys, revision: manifest?.revision });
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ForgetWindow', () => {
  it('bounds the window and closes it windowMs after the batch opened', () => {
    const clock = new FakeClock();
    const window = new ForgetWindow(HOUR, clock);
    let closed = 0;
    expect(window.wait(clock.now(), () => closed++)).toBe(true);
    clock.advance(HOUR - 1);
    expect(closed).toBe(0);
    clock.advance(1);
    expect(closed).toBe(1);
    // A batch opened more than a window ago starts at once.
    expect(window.wait(clock.now() - HOUR, () => closed++)).toBe(false);
    expect(() => new ForgetWindow(-1)).toThrow(/forget window/);
    expect(() => new ForgetWindow(MAX_FORGET_WINDOW_MS + 1)).toThrow(/a day/);
    expect(() => new ForgetWindow(1.5)).toThrow(/whole number/);
  });
});

describe('SisaForgetQueue with a forget window (fake clock)', () => {
  it('holds requests until the window closes, then replays them once with a receipt each', async () => {
    const store = new MemoryStore();
    const { layout, manifest: trained } = await trainSisaModel(store, train, sisaOptions());
    const clock = new FakeClock();
    const batches: string[][] = [];
    const queue = new SisaForgetQueue(store, train, {
      windowMs: HOUR,
      clock,
      onBatch: (ids) => batches.push([...ids]),
    });
    const done = new Map<string, SisaReceipt>();
    const submit = (requestId: string, sample: number): Promise<SisaReceipt> =>
      queue.submit({ requestId, sampleIds: [id(sample)] }).then((r) => {
        done.set(requestId, r);
        return r;
      });
    const a = submit('a', layout.slots[0]![2]![0]!);
    clock.advance(30 * 60_000);
    const b = submit('b', layout.slots[1]![1]![0]!);
    // The same request again within the window joins it once.
    const bAgain = queue.submit({ requestId: 'b', sampleIds: [id(layout.slots[1]![1]![0]!)] });
    clock.advance(29 * 60_000);
    await tick();
    // Accepted and waiting: nothing replayed or published yet.
    expect(queue.waiting).toBe(3);
    expect(queue.closesAt).toBe(clock.now() + 60_000);
    expect(batches).toEqual([]);
    expect((await new ManifestStore(store).read())!.revision).toBe(trained.revision);
    clock.advance(60_000);
    const [ra, rb, rbAgain] = await Promise.all([a, b, bAgain]);
    expect(batches).toEqual([['a', 'b', 'b']]);
    expect(queue.replays).toBe(1);
    expect(rbAgain).toEqual(rb);
    for (const receipt of [ra!, rb!]) {
      expect(receipt.batch!.requestIds).toEqual(['a', 'b']);
      expect(receipt.batch!.id).toMatch(/^batch-r\d+-[0-9a-f]{12}$/);
      expect(receipt.manifest).toEqual({ before: trained.revision, after: trained.revision + 1 });
    }
    expect(ra!.batch!.id).toBe(rb!.batch!.id);
    expect(ra!.requestId).toBe('a');
    expect(rb!.request.sampleIds).toEqual([id(layout.slots[1]![1]![0]!)]);

    // A request after the window opens the next batch, replayed on its own.
    const c = submit('c', layout.slots[0]![0]![1]!);
    clock.advance(HOUR);
    const rc = await c;
    expect(rc.batch!.requestIds).toEqual(['c']);
    expect(rc.batch!.id).not.toBe(ra!.batch!.id);
    expect(queue.replays).toBe(2);
    // Completed ids answer with their receipt without a replay.
    const again = queue.submit({ requestId: 'a', sampleIds: [id(layout.slots[0]![2]![0]!)] });
    clock.advance(HOUR);
    expect(await again).toEqual(ra);
    expect(queue.replays).toBe(2);
  });

  it('cancels a waiting request: the batch replays without it and its sample stays', async () => {
    const store = new MemoryStore();
    const { layout } = await trainSisaModel(store, train, sisaOptions());
    const clock = new FakeClock();
    const queue = new SisaForgetQueue(store, train, { windowMs: HOUR, clock });
    const keep = id(layout.slots[0]![1]![0]!);
    const x = queue.submit({ requestId: 'x', sampleIds: [keep] });
    const y = queue.submit({ requestId: 'y', sampleIds: [id(layout.slots[1]![2]![0]!)] });
    expect(queue.cancel('x')).toBe(true);
    await expect(x).rejects.toBeInstanceOf(ForgetCancelledError);
    expect(queue.cancel('x')).toBe(false);
    clock.advance(HOUR);
    const ry = await y;
    expect(ry.batch!.requestIds).toEqual(['y']);
    expect(ry.sisa.shards.map((s) => s.shard)).toEqual([1]);
    const manifest = (await new ManifestStore(store).read())!;
    expect(manifest.objects['receipt/x']).toBeUndefined();
    // x's sample was never forgotten: a new request for it is accepted and replayed.
    const again = queue.submit({ requestId: 'x2', sampleIds: [keep] });
    clock.advance(HOUR);
    expect((await again).request.sampleIds).toEqual([keep]);
    // Cancelling the only waiting request leaves no batch behind.
    const z = queue.submit({ requestId: 'z', sampleIds: [id(layout.slots[1]![0]![0]!)] });
    queue.cancel('z');
    await expect(z).rejects.toThrow(/cancelled/);
    clock.advance(HOUR);
    await tick();
    expect(queue.batches).toBe(2);
  });
});

describe('batched replay', () => {
  it('publishes the same weights as the same requests replayed one after another', async () => {
    const sequential = new MemoryStore();
    const batched = new MemoryStore();
    const { layout } = await trainSisaModel(sequential, train, sisaOptions());
    await trainSisaModel(batched, train, sisaOptions());
    const requests = [
      { requestId: 'r1', sampleIds: [id(layout.slots[0]![1]![0]!)] },
      { requestId: 'r2', sampleIds: [id(layout.slots[1]![2]![1]!), id(layout.slots[0]![2]![0]!)] },
      { requestId: 'r3', sampleIds: [id(layout.slots[1]![0]![0]!)] },
    ];
    for (const request of requests) await forgetSamples(sequential, train, request);
    const queue = new SisaForgetQueue(batched, train);
    await Promise.all(requests.map((r) => queue.submit(r)));
    expect(queue.replays).toBe(1);
    const parts = async (store: ObjectStore): Promise<Record<string, string>> => {
      const m = (await new ManifestStore(store).read())!;
      return Object.fromEntries(
        Object.entries(m.objects)
          .filter(([name]) => name === 'router' || name.startsWith('expert/'))
          .map(([name, ref]) => [name, ref.sha256]),
      );
    };
    // Both end on the layout without every sample: bit-identical experts and router.
    expect(await parts(batched)).toEqual(await parts(sequential));
  });
});

describe('planSisaForget (dry run)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lethe-sisa-plan-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('plans shards, slices and seconds, changes nothing, and matches the replay it plans', async () => {
    const store = new LocalDirStore(dir);
    const { layout } = await trainSisaModel(store, train, sisaOptions());
    const loaded = await loadSisa(store);
    expect(loaded.sisa.rate).toMatchObject({ source: 'training' });
    expect(loaded.sisa.rate!.sampleEpochsPerSecond).toBeGreaterThan(0);
    const ids = [id(layout.slots[1]![1]![0]!), id(layout.slots[1]![2]![0]!)];
    const before = await snapshot(store);
    const tensors = tf.memory().numTensors;
    const plan = await planSisaForget(store, train, { requestId: 'p', sampleIds: ids });
    expect(await snapshot(store)).toBe(before);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(plan.replay.map((r) => [r.shard, r.slicesReplayed, r.samplesRemoved])).toEqual([
      [1, [1, 2], 2],
    ]);
    expect(plan.work.sampleEpochs).toBeLessThan(plan.work.fullTrainingSampleEpochs);
    expect(plan.estimate!.totalSeconds).toBeGreaterThan(0);
    expect(plan.estimate!.rate.source).toBe('training');
    // Without a recorded rate, no seconds: "no rate yet".
    expect(
      planSisaReplay({ ...loaded, sisa: { ...loaded.sisa, rate: undefined } }, new Set()).estimate,
    ).toBeNull();
    // The same refusals as a real request, and still nothing changed.
    await expect(planSisaForget(store, train, { sampleIds: ['other:train:1'] })).rejects.toThrow(
      /not in the model's training set/,
    );
    expect(await snapshot(store)).toBe(before);

    const receipt = await forgetSamples(store, train, { requestId: 'p', sampleIds: ids });
    expect(receipt.sisa.shards.map((s) => [s.shard, s.slicesReplayed])).toEqual([[1, [1, 2]]]);
    // The replay measured its own rate; the plan of the done request says so and plans nothing.
    expect((await loadSisa(store)).sisa.rate!.source).toBe('replay');
    const done = await planSisaForget(store, train, { requestId: 'p', sampleIds: ids });
    expect(done.completed).toBe(true);
    expect(done.replay).toEqual([]);
    await expect(
      planSisaForget(store, train, { requestId: 'q', sampleIds: [ids[0]!] }),
    ).rejects.toThrow(/already forgotten/);
  });
});
