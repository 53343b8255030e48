import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  contentKey,
  getVerified,
  IntegrityError,
  InvalidMetadataError,
  LocalDirStore,
  NotFoundError,
  putContent,
  sha256Hex,
  verifyRef,
} from './index.js';
import type { ObjectInfo, ObjectStore, PutOptions } from './index.js';

/** Counts puts, to show which calls reached the underlying store. */
class CountingStore implements ObjectStore {
  puts = 0;
  constructor(readonly inner: ObjectStore) {}
  put(key: string, data: Uint8Array, options?: PutOptions): Promise<ObjectInfo> {
    this.puts++;
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
    return `counting(${this.inner.describe()})`;
  }
}

// toEqual walks typed arrays element by element, which takes seconds for multi-MB objects.
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(b);

describe('sha256Hex', () => {
  it('matches the FIPS 180-2 test vector', () => {
    expect(sha256Hex(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('hashes only the bytes a view covers', () => {
    const backing = new Uint8Array([1, 2, 3, 4, 5]);
    expect(sha256Hex(backing.subarray(1, 3))).toBe(sha256Hex(new Uint8Array([2, 3])));
  });
});

describe('content addressing', () => {
  let root: string;
  let store: CountingStore;
  const data = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 31) & 0xff);

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'lethe-content-'));
    store = new CountingStore(new LocalDirStore(root));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('stores bytes under their digest and reads them back verified', async () => {
    const ref = await putContent(store, data, { kind: 'expert', metadata: { expert: '3' } });
    expect(ref).toEqual({
      key: `objects/${sha256Hex(data)}`,
      sha256: sha256Hex(data),
      size: data.byteLength,
      kind: 'expert',
    });
    expect(sameBytes(await getVerified(store, ref), data)).toBe(true);
    expect((await store.head(ref.key))?.metadata).toEqual({ expert: '3', kind: 'expert' });
    await verifyRef(store, ref);
  });

  it('writes identical bytes once', async () => {
    const first = await putContent(store, data, { kind: 'expert' });
    const second = await putContent(store, data.slice(), { kind: 'router' });
    expect(store.puts).toBe(1);
    expect(second).toEqual({ ...first, kind: 'router' });
    expect((await store.head(first.key))?.metadata).toEqual({ kind: 'expert' });
    await putContent(store, data.subarray(1), { kind: 'expert' });
    expect(store.puts).toBe(2);
  });

  it('detects a corrupted object file, and heals it on the next put', async () => {
    const ref = await putContent(store, data, { kind: 'expert' });
    const file = path.join(root, 'objects', ref.sha256);
    const damaged = await readFile(file);
    damaged[damaged.length >> 1]! ^= 0x01;
    await writeFile(file, damaged);

    await expect(getVerified(store, ref)).rejects.toBeInstanceOf(IntegrityError);
    await expect(getVerified(store, ref)).rejects.toThrow(/expected sha256/);
    await expect(verifyRef(store, ref)).rejects.toBeInstanceOf(IntegrityError);

    await putContent(store, data, { kind: 'expert' });
    expect(store.puts).toBe(2);
    expect(sameBytes(await getVerified(store, ref), data)).toBe(true);
  });

  it('detects a truncated object file', async () => {
    const ref = await putContent(store, data, { kind: 'expert' });
    await truncate(path.join(root, 'objects', ref.sha256), 1000);
    await expect(getVerified(store, ref)).rejects.toThrow(/expected 3145728 bytes, found 1000/);
  });

  it('reports a missing object', async () => {
    const ref = await putContent(store, data, { kind: 'expert' });
    await store.delete(ref.key);
    await expect(getVerified(store, ref)).rejects.toBeInstanceOf(NotFoundError);
    await expect(verifyRef(store, ref)).rejects.toThrow(/does not exist/);
  });

  it('validates kinds and digests', async () => {
    await expect(putContent(store, data, { kind: 'Expert Weights' })).rejects.toBeInstanceOf(
      InvalidMetadataError,
    );
    expect(() => contentKey('ABC')).toThrow(TypeError);
    expect(store.puts).toBe(0);
  });
});
