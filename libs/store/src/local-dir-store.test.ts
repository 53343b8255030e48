import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { objectStoreContract } from '../test/object-store-contract.js';
import { InvalidKeyError, LocalDirStore, NotFoundError, sha256Hex } from './index.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array): string => new TextDecoder().decode(data);

const roots: string[] = [];
async function tempRoot(): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'lethe-store-'));
  roots.push(root);
  return root;
}
afterEach(async () => {
  await Promise.all(roots.splice(0).map((root) => rm(root, { recursive: true, force: true })));
});

objectStoreContract('LocalDirStore', async () => new LocalDirStore(await tempRoot()));

describe('LocalDirStore', () => {
  it('keeps objects as plain files that a fresh instance reads back', async () => {
    const root = await tempRoot();
    await new LocalDirStore(root).put('a/b', bytes('payload'), { metadata: { kind: 'x' } });
    expect(await readFile(path.join(root, 'a', 'b'), 'utf8')).toBe('payload');
    const reopened = new LocalDirStore(root);
    expect(text(await reopened.get('a/b'))).toBe('payload');
    expect((await reopened.head('a/b'))?.metadata).toEqual({ kind: 'x' });
  });

  it('leaves no temp files behind after writes', async () => {
    const root = await tempRoot();
    const store = new LocalDirStore(root);
    await store.put('d/k', bytes('1'));
    await store.put('d/k', bytes('2'));
    await store.put('d/j', bytes('3'), { ifNoneMatch: '*' });
    expect((await readdir(path.join(root, 'd'))).sort()).toEqual([
      'j',
      'j.meta.json',
      'k',
      'k.meta.json',
    ]);
  });

  it('lists past temp files, sidecars and foreign files', async () => {
    const root = await tempRoot();
    const store = new LocalDirStore(root);
    await store.put('d/k', bytes('x'));
    await writeFile(path.join(root, 'd', '.k.123.0123456789ab.tmp'), 'partial');
    await writeFile(path.join(root, 'd', 'gone.meta.json'), '{}');
    await writeFile(path.join(root, 'README.TXT'), 'not ours');
    await mkdir(path.join(root, '.git'));
    await writeFile(path.join(root, '.git', 'x'), '');
    expect((await store.list('')).map((info) => info.key)).toEqual(['d/k']);
  });

  it('sweeps only stale temp files and orphaned sidecars', async () => {
    const root = await tempRoot();
    const store = new LocalDirStore(root);
    await store.put('d/k', bytes('x'));
    const dir = path.join(root, 'd');
    await writeFile(path.join(dir, '.k.123.0123456789ab.tmp'), 'old partial');
    await writeFile(path.join(dir, '.k.meta.json.123.0123456789ab.tmp'), 'old partial');
    await writeFile(path.join(dir, 'gone.meta.json'), '{}');
    await writeFile(path.join(dir, '.k.456.ba9876543210.tmp'), 'writer still running');
    const old = new Date(Date.now() - 3_600_000);
    for (const name of [
      '.k.123.0123456789ab.tmp',
      '.k.meta.json.123.0123456789ab.tmp',
      'gone.meta.json',
    ]) {
      await utimes(path.join(dir, name), old, old);
    }
    expect(await store.sweepTemp()).toEqual([
      'd/.k.123.0123456789ab.tmp',
      'd/.k.meta.json.123.0123456789ab.tmp',
      'd/gone.meta.json',
    ]);
    expect(await store.sweepTemp({ olderThanMs: 0 })).toEqual(['d/.k.456.ba9876543210.tmp']);
    // A writer that is still running here keeps its temp file; one that is gone does not.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(path.join(dir, `.k.${process.pid}.aaaaaaaaaaaa.tmp`), 'this process');
    await writeFile(path.join(dir, `.k.${dead}.bbbbbbbbbbbb.tmp`), 'a crashed writer');
    expect(await store.sweepTemp({ deadWriters: true })).toEqual([`d/.k.${dead}.bbbbbbbbbbbb.tmp`]);
    await rm(path.join(dir, `.k.${process.pid}.aaaaaaaaaaaa.tmp`));
    expect((await readdir(dir)).sort()).toEqual(['k', 'k.meta.json']);
    expect((await store.head('d/k'))?.sha256).toBe(sha256Hex(bytes('x')));
  });

  describe('a sidecar that does not describe the file beside it', () => {
    it('is ignored after dying between sidecar and data renames', async () => {
      const root = await tempRoot();
      const store = new LocalDirStore(root);
      // Reproduce the on-disk state: old bytes in place, the new object's sidecar beside them.
      await store.put('k', bytes('old'), { metadata: { v: 'old' } });
      await store.put('other', bytes('new'), { metadata: { v: 'new' } });
      await writeFile(
        path.join(root, 'k.meta.json'),
        await readFile(path.join(root, 'other.meta.json')),
      );
      const info = await store.head('k');
      expect(info).toMatchObject({ size: 3, sha256: sha256Hex(bytes('old')), metadata: {} });
      expect((await store.list('k'))[0]).toEqual(info);
    });

    it('is ignored when the file was replaced by one of the same size', async () => {
      const root = await tempRoot();
      const store = new LocalDirStore(root);
      await store.put('k', bytes('aaaa'));
      const sidecar = await readFile(path.join(root, 'k.meta.json'));
      await store.put('k', bytes('bbbb'));
      await writeFile(path.join(root, 'k.meta.json'), sidecar);
      expect((await store.head('k'))?.sha256).toBe(sha256Hex(bytes('bbbb')));
    });

    it('is ignored when the file was edited in place', async () => {
      const root = await tempRoot();
      const store = new LocalDirStore(root);
      await store.put('k', bytes('aaaa'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      await writeFile(path.join(root, 'k'), 'bbbb');
      expect((await store.head('k'))?.sha256).toBe(sha256Hex(bytes('bbbb')));
    });

    it('is ignored when it is not valid JSON', async () => {
      const root = await tempRoot();
      const store = new LocalDirStore(root);
      await store.put('k', bytes('aaaa'));
      await writeFile(path.join(root, 'k.meta.json'), '{"v":1,');
      expect((await store.head('k'))?.sha256).toBe(sha256Hex(bytes('aaaa')));
    });
  });

  it('refuses a key that needs an existing object to be a directory, or vice versa', async () => {
    const store = new LocalDirStore(await tempRoot());
    await store.put('a', bytes('file'));
    await expect(store.put('a/b', bytes('x'))).rejects.toBeInstanceOf(InvalidKeyError);
    await store.put('c/d', bytes('file'));
    await expect(store.put('c', bytes('x'))).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(store.put('c', bytes('x'), { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
      InvalidKeyError,
    );
    await expect(store.get('c')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.get('a/b')).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.head('c')).toBeUndefined();
    await store.delete('c');
    expect(text(await store.get('c/d'))).toBe('file');
    expect((await store.list('')).map((info) => info.key)).toEqual(['a', 'c/d']);
  });

  it('keeps head consistent with get under concurrent overwrites', async () => {
    const store = new LocalDirStore(await tempRoot());
    const versions = Array.from({ length: 6 }, (_, i) => new Uint8Array(200_000 + i).fill(i));
    await Promise.all(
      versions.map((data, i) => store.put('k', data, { metadata: { i: String(i) } })),
    );
    const info = await store.head('k');
    const i = Number(info?.metadata['i']);
    expect(info?.sha256).toBe(sha256Hex(versions[i]!));
    expect(sha256Hex(await store.get('k'))).toBe(info?.sha256);
  });

  it('describes itself by its root only', async () => {
    const root = await tempRoot();
    expect(new LocalDirStore(root).describe()).toBe(`local-dir:${root}`);
  });
});
