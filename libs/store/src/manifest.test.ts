import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  IntegrityError,
  LocalDirStore,
  ManifestStore,
  MemoryStore,
  NotFoundError,
  putContent,
} from './index.js';
import type { ObjectInfo, ObjectRef, ObjectStore, PutOptions } from './index.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Fails every put of one key, standing in for a writer that dies just before that write. */
class FailingPutStore implements ObjectStore {
  constructor(
    readonly inner: ObjectStore,
    readonly failKey: string,
  ) {}
  async put(key: string, data: Uint8Array, options?: PutOptions): Promise<ObjectInfo> {
    if (key === this.failKey) throw new Error(`injected failure writing ${key}`);
    return this.inner.put(key, data, options);
  }
  get(key: string): Promise<Uint8Array> {
    return this.inner.get(key);
  }
  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(key);
  }
  list(prefix: string): Promise<ObjectInfo[]> {
    return this.inner.list(prefix);
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
  describe(): string {
    return this.inner.describe();
  }
}

describe('ManifestStore', () => {
  let store: MemoryStore;
  let manifests: ManifestStore;
  let router: ObjectRef;
  let expert0: ObjectRef;

  beforeEach(async () => {
    store = new MemoryStore();
    manifests = new ManifestStore(store);
    router = await putContent(store, bytes('router weights'), { kind: 'router' });
    expert0 = await putContent(store, bytes('expert 0 weights'), { kind: 'expert' });
  });

  it('has no manifest until the first update', async () => {
    expect(await manifests.read()).toBeUndefined();
    expect(await manifests.history()).toEqual([]);
    await expect(manifests.readRevision(1)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('publishes numbered, immutable revisions', async () => {
    const first = await manifests.update((m) => {
      m.objects['router'] = router;
      m.attributes['config'] = { experts: 4, topK: 2, preset: 'tiny' };
    });
    expect(first).toMatchObject({
      schema: 1,
      revision: 1,
      objects: { router },
      attributes: { config: { experts: 4, topK: 2, preset: 'tiny' } },
    });
    expect(Date.parse(first.updatedAt)).not.toBeNaN();
    expect(await manifests.read()).toEqual(first);

    const second = await manifests.update((m) => {
      m.objects['expert/0'] = expert0;
    });
    expect(second.revision).toBe(2);
    expect(Object.keys(second.objects)).toEqual(['expert/0', 'router']);
    expect(await manifests.read()).toEqual(second);
    expect(await manifests.readRevision(1)).toEqual(first);
    expect((await manifests.history()).map((h) => [h.revision, h.key])).toEqual([
      [1, 'manifests/000000000001.json'],
      [2, 'manifests/000000000002.json'],
    ]);
  });

  it('accepts a replacement manifest from the mutator and ignores its revision', async () => {
    await manifests.update((m) => {
      m.objects['router'] = router;
    });
    const next = await manifests.update((m) => ({
      ...m,
      revision: 99,
      objects: { 'expert/0': expert0 },
      attributes: { note: 'router dropped' },
    }));
    expect(next).toMatchObject({ revision: 2, objects: { 'expert/0': expert0 } });
    expect(next.objects['router']).toBeUndefined();
  });

  it('does not let callers change stored manifests through returned objects', async () => {
    const m = await manifests.update((d) => {
      d.objects['router'] = router;
    });
    m.objects['router']!.size = 1;
    delete m.objects['router'];
    expect((await manifests.read())?.objects['router']).toEqual(router);
  });

  it('rejects a stale expectRevision', async () => {
    await manifests.update(() => undefined, { expectRevision: 0 });
    await manifests.update(() => undefined, { expectRevision: 1 });
    await expect(manifests.update(() => undefined, { expectRevision: 1 })).rejects.toBeInstanceOf(
      ConflictError,
    );
    await expect(manifests.update(() => undefined, { expectRevision: 0 })).rejects.toThrow(
      /revision 2, expected 0/,
    );
    expect((await manifests.read())?.revision).toBe(2);
  });

  it('sees revisions published by another ManifestStore', async () => {
    const other = new ManifestStore(store);
    await manifests.update(() => undefined);
    await other.update(() => undefined, { expectRevision: 1 });
    await expect(manifests.update(() => undefined, { expectRevision: 1 })).rejects.toBeInstanceOf(
      ConflictError,
    );
    expect((await manifests.read())?.revision).toBe(2);
  });

  it('refuses to name an object that is not in the store', async () => {
    await manifests.update((m) => {
      m.objects['router'] = router;
    });
    const missing: ObjectRef = {
      ...expert0,
      key: `objects/${'0'.repeat(64)}`,
      sha256: '0'.repeat(64),
    };
    await expect(
      manifests.update((m) => {
        m.objects['expert/1'] = missing;
      }),
    ).rejects.toBeInstanceOf(IntegrityError);
    expect((await manifests.read())?.revision).toBe(1);
    expect(await store.head('manifests/000000000002.json')).toBeUndefined();
  });

  it('refuses to name an object whose digest or size differs from the reference', async () => {
    const wrongHash = { ...expert0, sha256: router.sha256 };
    const wrongSize = { ...expert0, size: expert0.size + 1 };
    for (const ref of [wrongHash, wrongSize]) {
      await expect(
        manifests.update((m) => {
          m.objects['expert/0'] = ref;
        }),
      ).rejects.toThrow(/expected .* bytes with sha256/);
    }
    expect(await manifests.read()).toBeUndefined();
  });

  it('refuses malformed references and attributes', async () => {
    const bad: ((m: {
      objects: Record<string, unknown>;
      attributes: Record<string, unknown>;
    }) => void)[] = [
      (m) => (m.objects['x'] = { ...router, sha256: 'nope' }),
      (m) => (m.objects['x'] = { ...router, key: '../etc/passwd' }),
      (m) => (m.objects[''] = router),
      (m) => (m.attributes['lr'] = Number.NaN),
      (m) => (m.attributes['when'] = new Date()),
      (m) => (m.attributes['f'] = () => 1),
    ];
    for (const mutate of bad) {
      await expect(manifests.update(mutate as never)).rejects.toBeInstanceOf(TypeError);
    }
    expect(await manifests.read()).toBeUndefined();
  });

  it('serialises concurrent updates within a process', async () => {
    const refs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        putContent(store, bytes(`expert ${i}`), { kind: 'expert' }),
      ),
    );
    const results = await Promise.all(
      refs.map((ref, i) =>
        manifests.update((m) => {
          m.objects[`expert/${i}`] = ref;
        }),
      ),
    );
    expect(results.map((m) => m.revision).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Object.keys((await manifests.read())!.objects)).toHaveLength(8);
  });

  it('keeps working after a mutator throws', async () => {
    await expect(
      manifests.update(() => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect((await manifests.update(() => undefined)).revision).toBe(1);
  });

  it('rolls forward past a revision whose writer died before repointing', async () => {
    await manifests.update((m) => {
      m.objects['router'] = router;
    });
    const dying = new ManifestStore(new FailingPutStore(store, 'manifest.json'));
    await expect(
      dying.update((m) => {
        m.objects['expert/0'] = expert0;
      }),
    ).rejects.toThrow(/injected/);

    const read = await manifests.read();
    expect(read?.revision).toBe(2);
    expect(read?.objects['expert/0']).toEqual(expert0);
    expect((await manifests.update(() => undefined, { expectRevision: 2 })).revision).toBe(3);
    expect((await manifests.read())?.revision).toBe(3);
  });

  it('leaves the previous manifest in place when the revision cannot be written', async () => {
    await manifests.update(() => undefined);
    const dying = new ManifestStore(new FailingPutStore(store, 'manifests/000000000002.json'));
    await expect(dying.update(() => undefined)).rejects.toThrow(/injected/);
    expect((await manifests.read())?.revision).toBe(1);
  });

  it('refuses to overwrite a revision that another writer published', async () => {
    await manifests.update(() => undefined);
    // Another process publishes revision 2 and dies before repointing; our read of the pointer
    // raced it, so we try to publish 2 as well.
    await store.put('manifests/000000000002.json', bytes('{}'), { ifNoneMatch: '*' });
    const racing = new ManifestStore(
      new (class extends FailingPutStore {
        override async head(key: string): Promise<ObjectInfo | undefined> {
          return key === 'manifests/000000000002.json' ? undefined : this.inner.head(key);
        }
      })(store, ''),
    );
    await expect(racing.update(() => undefined)).rejects.toThrow(/published by another writer/);
    expect(new TextDecoder().decode(await store.get('manifests/000000000002.json'))).toBe('{}');
  });

  it('detects a tampered or malformed revision document', async () => {
    await manifests.update((m) => {
      m.objects['router'] = router;
    });
    const key = 'manifests/000000000001.json';
    const original = await store.get(key);
    const doc = JSON.parse(new TextDecoder().decode(original)) as { attributes: object };
    doc.attributes = { tampered: true };
    await store.put(key, bytes(JSON.stringify(doc)));
    await expect(manifests.read()).rejects.toBeInstanceOf(IntegrityError);

    await store.put(key, bytes('{"schema":1,"revision":7}'));
    await expect(manifests.readRevision(1)).rejects.toThrow(/says revision 7/);
    await store.put(key, bytes('not json'));
    await expect(manifests.readRevision(1)).rejects.toBeInstanceOf(IntegrityError);
  });

  it('reads past a damaged pointer to the newest revision, and repair() rewrites it', async () => {
    await manifests.update((m) => {
      m.objects['router'] = router;
    });
    await manifests.update((m) => {
      m.objects['expert/0'] = expert0;
    });
    for (const damage of ['not json', '{"schema":1,"revision":"x"}', '']) {
      await store.put('manifest.json', bytes(damage));
      expect((await manifests.read())?.revision).toBe(2);
      expect(await manifests.repair()).toEqual({ problem: 'damaged', from: undefined, to: 2 });
      expect(await manifests.repair()).toBeUndefined();
      expect(JSON.parse(new TextDecoder().decode(await store.get('manifest.json')))).toMatchObject({
        revision: 2,
      });
    }
    // Updates work on a damaged pointer too, and repoint it.
    await store.put('manifest.json', bytes('{'));
    expect((await manifests.update(() => undefined, { expectRevision: 2 })).revision).toBe(3);
    expect(await manifests.repair()).toBeUndefined();
  });

  it('repairs a stale pointer left by a writer that died before repointing', async () => {
    await manifests.update(() => undefined);
    const dying = new ManifestStore(new FailingPutStore(store, 'manifest.json'));
    await expect(dying.update(() => undefined)).rejects.toThrow(/injected/);
    expect(await manifests.repair()).toEqual({ problem: 'stale', from: 1, to: 2 });
    expect(await manifests.repair()).toBeUndefined();
  });

  it('never rolls back past a damaged newest revision', async () => {
    await manifests.update((m) => {
      m.attributes['forgotten'] = [];
    });
    await manifests.update((m) => {
      m.attributes['forgotten'] = ['cat'];
    });
    await store.put('manifests/000000000002.json', bytes('garbage'));
    await store.put('manifest.json', bytes('garbage'));
    await expect(manifests.read()).rejects.toBeInstanceOf(IntegrityError);
    await expect(manifests.repair()).rejects.toBeInstanceOf(IntegrityError);
  });

  it('checks before a long job that a revision could be published', async () => {
    await manifests.update(() => undefined);
    await manifests.checkPublishable();
    expect((await store.list('manifests/')).map((o) => o.key)).toEqual([
      'manifests/000000000001.json',
    ]);
    const refusing = new ManifestStore(
      new (class extends FailingPutStore {
        override put(): Promise<ObjectInfo> {
          return Promise.reject(new Error('EROFS: read-only file system'));
        }
      })(store, ''),
    );
    await expect(refusing.checkPublishable()).rejects.toThrow(/EROFS/);
    await store.put('manifests/000000000001.json', bytes('garbage'));
    await expect(manifests.checkPublishable()).rejects.toBeInstanceOf(IntegrityError);
  });

  it('keeps models under different prefixes apart', async () => {
    const a = new ManifestStore(store, { prefix: 'models/a/' });
    const b = new ManifestStore(store, { prefix: 'models/b/' });
    await a.update(() => undefined);
    await a.update(() => undefined);
    await b.update(() => undefined);
    expect((await a.read())?.revision).toBe(2);
    expect((await b.read())?.revision).toBe(1);
    expect(await manifests.read()).toBeUndefined();
    expect((await b.history()).map((h) => h.key)).toEqual(['models/b/manifests/000000000001.json']);
    expect(() => new ManifestStore(store, { prefix: 'models/a' })).toThrow(TypeError);
  });
});

describe('ManifestStore over LocalDirStore', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'lethe-manifest-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('never publishes one revision twice when processes race', async () => {
    // Separate store instances share no in-process lock, like separate processes.
    const writers = Array.from({ length: 4 }, () => new ManifestStore(new LocalDirStore(root)));
    const outcomes = await Promise.allSettled(
      writers.flatMap((w) => Array.from({ length: 5 }, () => w.update(() => undefined))),
    );
    const published: number[] = [];
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') published.push(outcome.value.revision);
      else expect(outcome.reason).toBeInstanceOf(ConflictError);
    }
    expect(new Set(published).size).toBe(published.length);
    const latest = await new ManifestStore(new LocalDirStore(root)).read();
    expect(latest?.revision).toBe(Math.max(...published));
    expect((await writers[0]!.history()).map((h) => h.revision)).toEqual(
      Array.from({ length: latest!.revision }, (_, i) => i + 1),
    );
  });
});
