import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { Client } from 'minio';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { objectStoreContract } from '../test/object-store-contract.js';
import {
  ConflictError,
  IntegrityError,
  LocalDirStore,
  ManifestStore,
  NotFoundError,
  openObjectStore,
  parseObjectStoreUrl,
  putContent,
  S3ObjectStore,
  sha256Hex,
} from './index.js';
import type { S3ObjectStoreConfig } from './index.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array): string => new TextDecoder().decode(data);

// s3rver's built-in account; it checks request signatures against this key pair.
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';
const MiB = 1024 * 1024;

let server: S3rver;
let dataDir: string;
let port: number;
let raw: Client;
let serial = 0;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'lethe-s3rver-'));
  server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dataDir });
  ({ port } = await server.run());
  raw = new Client({
    endPoint: '127.0.0.1',
    port,
    useSSL: false,
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
  });
});

afterAll(async () => {
  await server?.close();
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
});

/** A fresh prefix (or bucket) per call, so that tests never see each other's objects. */
function config(overrides: Partial<S3ObjectStoreConfig> = {}): S3ObjectStoreConfig {
  serial++;
  return {
    endPoint: '127.0.0.1',
    port,
    useSSL: false,
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    bucket: 'lethe-test',
    prefix: `t${serial}`,
    // s3rver ignores If-None-Match (see 'conditional puts' below).
    conditionalPut: 'emulate-in-process',
    ...overrides,
  };
}

async function rawHead(bucket: string, name: string): Promise<Record<string, string | number>> {
  return (await raw.statObject(bucket, name)).metaData as Record<string, string | number>;
}

objectStoreContract('S3ObjectStore', () => S3ObjectStore.open(config()));

describe('S3ObjectStore', () => {
  it('creates a missing bucket on open, and tolerates racing creators', async () => {
    const bucket = `auto-${randomBytes(4).toString('hex')}`;
    expect(await raw.bucketExists(bucket)).toBe(false);
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => S3ObjectStore.open(config({ bucket, prefix: '' }))),
    );
    expect(await raw.bucketExists(bucket)).toBe(true);
    await stores[0]!.put('k', bytes('v'));
    expect(text(await stores[3]!.get('k'))).toBe('v');
  });

  it('keeps the SHA-256 and user metadata as x-amz-meta-* on the object', async () => {
    const store = await S3ObjectStore.open(config());
    const data = bytes('weights');
    await store.put('expert/0', data, { metadata: { kind: 'expert', epoch: '3' } });
    const meta = await rawHead(store.bucket, `${store.prefix}expert/0`);
    expect(meta).toMatchObject({ sha256: sha256Hex(data), kind: 'expert', epoch: '3' });
    expect((await store.head('expert/0'))?.metadata).toEqual({ kind: 'expert', epoch: '3' });
  });

  it('throws IntegrityError when the bytes no longer match the stored digest', async () => {
    const store = await S3ObjectStore.open(config());
    const original = await store.put('k', bytes('original'));
    // Tampered with behind the store's back, keeping the old digest.
    await raw.putObject(store.bucket, `${store.prefix}k`, Buffer.from('tampered'), undefined, {
      sha256: original.sha256,
    });
    await expect(store.get('k')).rejects.toBeInstanceOf(IntegrityError);
    await expect(store.get('k')).rejects.toMatchObject({ key: 'k', code: 'ERR_STORE_INTEGRITY' });

    await raw.putObject(store.bucket, `${store.prefix}k`, Buffer.from('x'), undefined, {
      sha256: 'not-a-digest',
    });
    await expect(store.get('k')).rejects.toBeInstanceOf(IntegrityError);
    await expect(store.head('k')).rejects.toBeInstanceOf(IntegrityError);
  });

  it('hashes objects that other tools wrote without a digest', async () => {
    const store = await S3ObjectStore.open(config());
    await raw.putObject(store.bucket, `${store.prefix}foreign`, Buffer.from('from mc'));
    expect(text(await store.get('foreign'))).toBe('from mc');
    expect(await store.head('foreign')).toMatchObject({
      size: 7,
      sha256: sha256Hex(bytes('from mc')),
      metadata: {},
    });
  });

  it('round-trips a 20 MB object in parts, and in one PUT', async () => {
    const data = new Uint8Array(randomBytes(20 * MiB));
    const uploadPart = vi.spyOn(Client.prototype, 'uploadPart');
    try {
      const multipart = await S3ObjectStore.open(config({ partSize: 5 * MiB }));
      const info = await multipart.put('big', data, { metadata: { kind: 'expert' } });
      expect(uploadPart).toHaveBeenCalledTimes(4);
      expect(info).toMatchObject({ size: data.byteLength, sha256: sha256Hex(data) });
      const stat = await raw.statObject(multipart.bucket, `${multipart.prefix}big`);
      expect(stat.metaData).toMatchObject({ sha256: sha256Hex(data), kind: 'expert' });
      expect(Buffer.from(await multipart.get('big')).equals(data)).toBe(true);
      expect(await multipart.head('big')).toEqual(info);

      uploadPart.mockClear();
      const single = await S3ObjectStore.open(config());
      await single.put('big', data);
      expect(uploadPart).not.toHaveBeenCalled();
      expect(sha256Hex(await single.get('big'))).toBe(sha256Hex(data));
    } finally {
      uploadPart.mockRestore();
    }
  });

  it('lists across several pages', async () => {
    const store = await S3ObjectStore.open(config({ listPageSize: 2 }));
    const keys = ['a', 'b/1', 'b/10', 'b/2', 'c', 'd/e/f', 'g'];
    for (const key of [...keys].reverse()) await store.put(key, bytes(key));
    expect((await store.list('')).map((info) => info.key)).toEqual(keys);
    expect((await store.list('b/')).map((info) => info.key)).toEqual(['b/1', 'b/10', 'b/2']);
  });

  it('lists number-like keys at the bucket root unchanged', async () => {
    const bucket = `root-${randomBytes(4).toString('hex')}`;
    const store = await S3ObjectStore.open(config({ bucket, prefix: '' }));
    const keys = ['0', '007', '0x10', '1e5', '12345678901234567890'];
    for (const key of keys) await store.put(key, bytes(key));
    expect((await store.list('')).map((info) => info.key)).toEqual([...keys].sort());
  });

  it('keeps stores with neighbouring prefixes apart, and hides foreign names', async () => {
    const bucket = 'lethe-test';
    const a = await S3ObjectStore.open(config({ prefix: `p${serial}/a` }));
    const ab = await S3ObjectStore.open(config({ prefix: `p${serial - 1}/a-b` }));
    await a.put('k', bytes('a'));
    await ab.put('k', bytes('ab'));
    await raw.putObject(bucket, `${a.prefix}k.meta.json`, Buffer.from('{}'));
    await raw.putObject(bucket, `${a.prefix}Upper`, Buffer.from('x'));
    expect((await a.list('')).map((info) => info.key)).toEqual(['k']);
    expect(text(await ab.get('k'))).toBe('ab');
  });

  it('maps missing objects and keeps delete idempotent', async () => {
    const store = await S3ObjectStore.open(config());
    await expect(store.get('nope')).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.head('nope')).toBeUndefined();
    await store.delete('nope');
  });

  describe('conditional puts', () => {
    it('refuses them against a server that ignores If-None-Match, rather than pretend', async () => {
      const store = await S3ObjectStore.open(config({ conditionalPut: 'server' }));
      await store.put('k', bytes('first'));
      await expect(store.put('k', bytes('second'), { ifNoneMatch: '*' })).rejects.toThrow(
        /ignores 'If-None-Match: \*'/,
      );
      await expect(store.put('new', bytes('x'), { ifNoneMatch: '*' })).rejects.toThrow(/ignores/);
      expect(text(await store.get('k'))).toBe('first');
      expect(await store.head('new')).toBeUndefined();
      // The probe cleans up after itself, and would be hidden from list() if it had not.
      const names = await new Promise<string[]>((resolve, reject) => {
        const found: string[] = [];
        raw
          .listObjectsV2(store.bucket, store.prefix, true)
          .on('data', (item) => found.push(item.name ?? ''))
          .on('end', () => resolve(found))
          .on('error', reject);
      });
      expect(names).toEqual([`${store.prefix}k`]);
    });

    it('emulated: one winner among instances of one process', async () => {
      const shared = config();
      const stores = await Promise.all([S3ObjectStore.open(shared), S3ObjectStore.open(shared)]);
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) =>
          stores[i % 2]!.put('race', bytes(`w${i}`), { ifNoneMatch: '*' }),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
      }
    });
  });

  it('describes itself without credentials, and keeps secrets out of errors', async () => {
    const store = await S3ObjectStore.open(config({ prefix: 'models/m1' }));
    expect(store.describe()).toBe(`s3://lethe-test/models/m1/ at http://127.0.0.1:${port}`);
    expect(store.describe()).not.toContain(SECRET_KEY);
    expect(store.describe()).not.toContain(ACCESS_KEY);
    expect(inspect(store, { depth: 5 })).not.toContain(SECRET_KEY);

    // s3rver does not check SigV4 signatures, only that it knows the access key.
    const secret = `secret-${randomBytes(6).toString('hex')}`;
    const unknownUser = config({ accessKey: 'nobody', secretKey: secret });
    const error: unknown = await S3ObjectStore.open(unknownUser).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^S3 open of bucket 'lethe-test' at http:\S+ failed: /,
    );
    expect((error as Error).message).not.toContain('\n');
    expect(inspect(error, { depth: 10 })).not.toContain(secret);
  });

  it('names the operation and key when a request fails', async () => {
    const bucket = `gone-${randomBytes(4).toString('hex')}`;
    const store = await S3ObjectStore.open(config({ bucket }));
    await raw.removeBucket(bucket);
    await expect(store.get('expert/0')).rejects.toThrow(
      new RegExp(
        `^S3 get of 'expert/0' in s3://${bucket}/t\\d+/ at http://\\S+ failed: NoSuchBucket`,
      ),
    );
    await expect(store.put('k', bytes('x'))).rejects.toThrow(/^S3 put of 'k' in .* failed: /);
    await expect(store.list('')).rejects.toThrow(/^S3 list of '' in .* failed: /);
  });

  it('carries the manifest protocol', async () => {
    const cfg = config();
    const store = await S3ObjectStore.open(cfg);
    const manifests = new ManifestStore(store, { prefix: 'model/' });
    const router = await putContent(store, bytes('router weights'), { kind: 'router' });
    const expert = await putContent(store, bytes('expert weights'), { kind: 'expert' });
    await manifests.update((draft) => {
      draft.objects.router = router;
      draft.attributes.experts = 1;
    });
    const second = await manifests.update((draft) => {
      draft.objects['expert/0'] = expert;
    });
    expect(second.revision).toBe(2);

    const reader = new ManifestStore(await S3ObjectStore.open(cfg), { prefix: 'model/' });
    expect(await reader.read()).toEqual(second);
    expect((await reader.readRevision(1)).objects).toEqual({ router });
    expect((await reader.history()).map((h) => h.revision)).toEqual([1, 2]);
    await expect(manifests.update(() => undefined, { expectRevision: 1 })).rejects.toBeInstanceOf(
      ConflictError,
    );

    // A damaged revision document is caught, not served.
    const doc = `${store.prefix}model/manifests/000000000002.json`;
    const stat = await raw.statObject(store.bucket, doc);
    await raw.putObject(store.bucket, doc, Buffer.from('{}'), undefined, {
      sha256: String(stat.metaData.sha256),
    });
    await expect(reader.read()).rejects.toBeInstanceOf(IntegrityError);
  });
});

describe('openObjectStore', () => {
  const creds = { LETHE_S3_ACCESS_KEY: 'lethe-ak', LETHE_S3_SECRET_KEY: 'lethe-sk' };

  it('takes paths and file: URLs as local directories', async () => {
    expect(parseObjectStoreUrl('data/store', {})).toEqual({
      kind: 'local-dir',
      root: path.resolve('data/store'),
    });
    expect(parseObjectStoreUrl('file:rel/dir', {})).toEqual({
      kind: 'local-dir',
      root: path.resolve('rel/dir'),
    });
    expect(parseObjectStoreUrl('file:///srv/lethe', {})).toEqual({
      kind: 'local-dir',
      root: path.resolve('/srv/lethe'),
    });
    const dir = await mkdtemp(path.join(tmpdir(), 'lethe-open-'));
    try {
      const store = await openObjectStore(`file:${dir}`, {});
      expect(store).toBeInstanceOf(LocalDirStore);
      expect(store.describe()).toBe(`local-dir:${dir}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('emulates conditional puts only when the URL asks for it', () => {
    const url = 's3://b?endpoint=http://127.0.0.1:9000&conditional-put=emulate';
    const location = parseObjectStoreUrl(url, creds);
    expect(location.kind === 's3' && location.config.conditionalPut).toBe('emulate-in-process');
    expect(() =>
      parseObjectStoreUrl('s3://b?endpoint=http://127.0.0.1:9000&conditional-put=maybe', creds),
    ).toThrow(/conditional-put must be server or emulate/);
  });

  it('parses s3:// URLs', () => {
    expect(
      parseObjectStoreUrl('s3://models/team/a?endpoint=http://127.0.0.1:9000&region=eu-1', creds),
    ).toEqual({
      kind: 's3',
      config: {
        endPoint: '127.0.0.1',
        port: 9000,
        useSSL: false,
        accessKey: 'lethe-ak',
        secretKey: 'lethe-sk',
        bucket: 'models',
        prefix: 'team/a',
        region: 'eu-1',
      },
    });
    expect(
      parseObjectStoreUrl('s3://b', {
        LETHE_S3_ENDPOINT: 'https://minio.example',
        AWS_ACCESS_KEY_ID: 'aws-ak',
        AWS_SECRET_ACCESS_KEY: 'aws-sk',
        AWS_SESSION_TOKEN: 'tok',
      }),
    ).toEqual({
      kind: 's3',
      config: {
        endPoint: 'minio.example',
        port: 443,
        useSSL: true,
        accessKey: 'aws-ak',
        secretKey: 'aws-sk',
        sessionToken: 'tok',
        bucket: 'b',
      },
    });
    const both = { ...creds, AWS_ACCESS_KEY_ID: 'aws-ak', AWS_SECRET_ACCESS_KEY: 'aws-sk' };
    const location = parseObjectStoreUrl('s3://b?endpoint=http://[::1]:9000', both);
    expect(location).toMatchObject({
      config: { endPoint: '::1', accessKey: 'lethe-ak', secretKey: 'lethe-sk' },
    });
  });

  it('says which environment variables hold the credentials', () => {
    const url = 's3://b?endpoint=http://127.0.0.1:9000';
    expect(() => parseObjectStoreUrl(url, {})).toThrow(
      /LETHE_S3_ACCESS_KEY and LETHE_S3_SECRET_KEY \(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\)/,
    );
    expect(() => parseObjectStoreUrl(url, { LETHE_S3_ACCESS_KEY: 'ak' })).toThrow(
      /LETHE_S3_SECRET_KEY is not set/,
    );
    expect(() => parseObjectStoreUrl(url, { AWS_SECRET_ACCESS_KEY: 'sk' })).toThrow(
      /AWS_ACCESS_KEY_ID is not set/,
    );
  });

  it('rejects malformed store URLs without echoing secrets', () => {
    const reject = (url: string, env = creds): string => {
      try {
        parseObjectStoreUrl(url, env);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error(`accepted ${url}`);
    };
    const withSecret = reject('s3://ak:hunter2@b?endpoint=http://127.0.0.1:9000');
    expect(withSecret).toMatch(/must not carry credentials/);
    expect(withSecret).not.toContain('hunter2');
    expect(reject('s3://b?endpoint=http://u:hunter2@h:1')).not.toContain('hunter2');
    expect(reject('s3://b')).toMatch(/needs an endpoint/);
    expect(reject('s3://b?endpoint=ftp://h')).toMatch(/http:\/\/ or https:\/\//);
    expect(reject('s3://b?endpoint=http://h/path')).toMatch(/no path/);
    expect(reject('s3://b?endpoint=http://h&secret=x')).toMatch(/unknown parameter 'secret'/);
    expect(reject('gs://b')).toMatch(/unsupported object store URL scheme 'gs:'/);
    expect(reject('file:')).toMatch(/names no directory/);
  });

  it('opens an S3 store from a URL and the environment', async () => {
    const store = await openObjectStore(
      `s3://lethe-test/opened?endpoint=http://127.0.0.1:${port}`,
      {
        LETHE_S3_ACCESS_KEY: ACCESS_KEY,
        LETHE_S3_SECRET_KEY: SECRET_KEY,
      },
    );
    expect(store).toBeInstanceOf(S3ObjectStore);
    expect(store.describe()).toBe(`s3://lethe-test/opened/ at http://127.0.0.1:${port}`);
    await store.put('k', bytes('v'));
    expect(text(await store.get('k'))).toBe('v');
  });
});
