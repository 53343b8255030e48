import { beforeEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  InvalidKeyError,
  InvalidMetadataError,
  NotFoundError,
  sha256Hex,
} from '../src/index.js';
import type { ObjectStore } from '../src/index.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array): string => new TextDecoder().decode(data);

export const INVALID_KEYS = [
  '',
  '/abs',
  'trailing/',
  'a//b',
  '.',
  '..',
  'a/../b',
  'a/./b',
  '.hidden',
  'a/.tmp',
  'Upper',
  'sp ace',
  'back\\slash',
  'colon:',
  'uni\u00e9',
  'nul\u0000',
  'x.meta.json',
  'x.meta.json/y',
  'a'.repeat(201),
  `${'a/'.repeat(512)}a`,
];

export const VALID_KEYS = [
  'a',
  'objects/0123abcd',
  'expert/0',
  'manifests/000000000001.json',
  'a.b-c_d/e..f',
  '_x/-y',
  'a'.repeat(200),
];

/**
 * Behaviour every ObjectStore must share. Future stores (S3/MinIO) run the same suite, which
 * is what lets the manifest and content-addressing code treat them as interchangeable.
 */
export function objectStoreContract(name: string, create: () => Promise<ObjectStore>): void {
  describe(`${name}: ObjectStore contract`, () => {
    let store: ObjectStore;
    beforeEach(async () => {
      store = await create();
    });

    it('round-trips bytes, digest and metadata through put, get and head', async () => {
      const data = bytes('hello');
      const info = await store.put('a/b', data, { metadata: { kind: 'greeting' } });
      expect(info).toMatchObject({
        key: 'a/b',
        size: 5,
        sha256: sha256Hex(data),
        metadata: { kind: 'greeting' },
      });
      expect(info.modified).toBeInstanceOf(Date);
      expect(text(await store.get('a/b'))).toBe('hello');
      expect(await store.head('a/b')).toEqual(info);
    });

    it('stores empty objects', async () => {
      await store.put('empty', new Uint8Array(0));
      expect((await store.get('empty')).byteLength).toBe(0);
      expect((await store.head('empty'))?.sha256).toBe(sha256Hex(new Uint8Array(0)));
    });

    it('is not affected by the caller reusing its buffer', async () => {
      const data = bytes('abc');
      await store.put('k', data);
      data[0] = 0x7a;
      const got = await store.get('k');
      expect(text(got)).toBe('abc');
      got[1] = 0x7a;
      expect(text(await store.get('k'))).toBe('abc');
    });

    it('reports missing objects', async () => {
      await expect(store.get('missing')).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.get('missing')).rejects.toMatchObject({ key: 'missing' });
      expect(await store.head('missing')).toBeUndefined();
    });

    it('overwrites bytes and metadata together', async () => {
      await store.put('k', bytes('one'), { metadata: { n: '1' } });
      await store.put('k', bytes('second'));
      expect(text(await store.get('k'))).toBe('second');
      expect(await store.head('k')).toMatchObject({
        size: 6,
        sha256: sha256Hex(bytes('second')),
        metadata: {},
      });
    });

    it('lists by plain string prefix, sorted by key', async () => {
      for (const key of ['b/2', 'a', 'b/10', 'b/1', 'ba', 'c/d/e'])
        await store.put(key, bytes(key));
      const keys = async (prefix: string): Promise<string[]> =>
        (await store.list(prefix)).map((info) => info.key);
      expect(await keys('')).toEqual(['a', 'b/1', 'b/10', 'b/2', 'ba', 'c/d/e']);
      expect(await keys('b')).toEqual(['b/1', 'b/10', 'b/2', 'ba']);
      expect(await keys('b/')).toEqual(['b/1', 'b/10', 'b/2']);
      expect(await keys('b/1')).toEqual(['b/1', 'b/10']);
      expect(await keys('c/')).toEqual(['c/d/e']);
      expect(await keys('zzz')).toEqual([]);
      const [info] = await store.list('c/d/e');
      expect(info).toMatchObject({ key: 'c/d/e', size: 5, sha256: sha256Hex(bytes('c/d/e')) });
    });

    it('deletes idempotently', async () => {
      await store.put('k', bytes('x'));
      await store.delete('k');
      await store.delete('k');
      await store.delete('never/existed');
      expect(await store.head('k')).toBeUndefined();
      expect(await store.list('')).toEqual([]);
    });

    it('honours ifNoneMatch', async () => {
      await store.put('k', bytes('first'), { ifNoneMatch: '*', metadata: { n: '1' } });
      await expect(store.put('k', bytes('second'), { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
        ConflictError,
      );
      expect(text(await store.get('k'))).toBe('first');
      expect((await store.head('k'))?.metadata).toEqual({ n: '1' });
    });

    it('lets exactly one of several racing ifNoneMatch puts win', async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          store.put('race', bytes(`w${i}`), { ifNoneMatch: '*' }),
        ),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
      }
      const winner = (won[0] as PromiseFulfilledResult<{ sha256: string }>).value;
      expect(sha256Hex(await store.get('race'))).toBe(winner.sha256);
    });

    it.each(INVALID_KEYS)('rejects the key %j', async (key) => {
      await expect(store.put(key, bytes('x'))).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.get(key)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.head(key)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidKeyError);
    });

    it('accepts valid keys', async () => {
      for (const key of VALID_KEYS) {
        await store.put(key, bytes(key));
        expect(text(await store.get(key))).toBe(key);
      }
    });

    it.each(['/', '/a', 'a//', '..', 'a/..', 'a/.', 'A', 'a b'])(
      'rejects the list prefix %j',
      async (prefix) => {
        await expect(store.list(prefix)).rejects.toBeInstanceOf(InvalidKeyError);
      },
    );

    it.each<Record<string, string>>([
      { Kind: 'x' },
      { 'a b': 'x' },
      { a_b: 'x' },
      { k: 'line\nbreak' },
      { k: 'caf\u00e9' },
      { k: 'x'.repeat(3000) },
      { k: 'x'.repeat(1978) },
      { sha256: '0'.repeat(64) },
      { k: ' leading' },
      { k: 'trailing ' },
    ])('rejects the metadata %j', async (metadata) => {
      await expect(store.put('k', bytes('x'), { metadata })).rejects.toBeInstanceOf(
        InvalidMetadataError,
      );
      expect(await store.head('k')).toBeUndefined();
    });

    it('carries metadata up to the size limit, and punctuation and inner spaces', async () => {
      const full = { k: 'x'.repeat(1977) };
      await store.put('full', bytes('x'), { metadata: full });
      expect((await store.head('full'))?.metadata).toEqual(full);
      const odd = { 'a-b': 'x  y "z" \\ %20 = & ~' };
      await store.put('odd', bytes('x'), { metadata: odd });
      expect((await store.head('odd'))?.metadata).toEqual(odd);
      expect((await store.list('odd'))[0]?.metadata).toEqual(odd);
    });

    it('describes itself in one line', () => {
      expect(store.describe()).toMatch(/^[^\n]+$/);
    });
  });
}
