import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tar from 'tar';
import { describe, expect, it } from 'vitest';
import { DataError, type FetchLike, fetchDataset, openDataset, readCifar10 } from '../src/index';
import { at, pixel, tempDir, writeCifar10, writeCifar100 } from './helpers';

/** Packs `folder` (relative to `cwd`) as a .tar.gz; returns the archive's path and MD5. */
async function pack(cwd: string, folder: string): Promise<{ file: string; md5: string }> {
  const file = join(cwd, `${folder}.tar.gz`);
  await tar.c({ gzip: true, file, cwd }, [folder]);
  const md5 = createHash('md5')
    .update(await readFile(file))
    .digest('hex');
  return { file, md5 };
}

describe('fetchDataset', () => {
  it('downloads from a file URL, verifies, unpacks, then skips', async () => {
    const src = await tempDir();
    await writeCifar10(src);
    const { file, md5 } = await pack(src, 'cifar-10-batches-bin');
    const size = (await readFile(file)).length;
    const cache = join(await tempDir(), 'cache');
    const progress: [number, number | undefined][] = [];
    const res = await fetchDataset('cifar10', cache, {
      url: pathToFileURL(file).href,
      md5: md5.toUpperCase(),
      onProgress: (r, t) => progress.push([r, t]),
    });
    expect(res.downloaded).toBe(true);
    expect(res.dir).toBe(join(cache, 'cifar-10-batches-bin'));
    expect(progress.at(-1)).toEqual([size, size]);
    // Only the dataset folder is left: no temp archive or unpack dir.
    expect(await readdir(cache)).toEqual(['cifar-10-batches-bin']);
    const ds = await readCifar10(res.dir, 'train');
    expect(ds.size).toBe(10);
    expect(at(ds.images, 6, 3, 4, 1)).toBe(pixel(6, 3, 4, 1));
    expect((await openDataset(res.spec, 'test')).size).toBe(3);

    const again = await fetchDataset('cifar10', cache, {
      url: 'file:///does/not/exist.tar.gz',
      md5,
    });
    expect(again).toEqual({ ...res, downloaded: false });
  });

  it('uses an injected fetch for http(s) URLs', async () => {
    const src = await tempDir();
    await writeCifar100(src);
    const { file, md5 } = await pack(src, 'cifar-100-binary');
    const body = await readFile(file);
    const urls: string[] = [];
    const fakeFetch: FetchLike = async (url) => {
      urls.push(url);
      return new Response(body, { headers: { 'content-length': String(body.length) } });
    };
    const cache = await tempDir();
    let last: [number, number | undefined] = [0, 0];
    const res = await fetchDataset('cifar100', cache, {
      md5,
      fetch: fakeFetch,
      onProgress: (r, t) => (last = [r, t]),
    });
    expect(urls).toEqual(['https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz']);
    expect(last).toEqual([body.length, body.length]);
    const ds = await openDataset(res.spec, 'train');
    expect(ds.size).toBe(6);

    const failing: FetchLike = async () =>
      new Response('gone', { status: 404, statusText: 'Not Found' });
    const err = await fetchDataset('cifar100', await tempDir(), { fetch: failing }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toMatch(
      /cifar-100-binary\.tar\.gz: download failed: HTTP 404 Not Found/,
    );
  });

  it('rejects a wrong MD5 and leaves nothing in the cache', async () => {
    const src = await tempDir();
    await writeCifar10(src);
    const { file } = await pack(src, 'cifar-10-batches-bin');
    const cache = await tempDir();
    const url = pathToFileURL(file).href;
    const err = await fetchDataset('cifar10', cache, { url, md5: '0'.repeat(32) }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toContain(url);
    expect((err as Error).message).toMatch(/MD5 mismatch: expected 0{32}, got [0-9a-f]{32}/);
    expect(await readdir(cache)).toEqual([]);
    // The default MD5 is the official archive's, which a synthetic archive cannot match.
    await expect(fetchDataset('cifar10', cache, { url })).rejects.toThrow(
      /expected c32a1d4ab5d03f1284b67883e8d87530/,
    );
    expect(await readdir(cache)).toEqual([]);
  });

  it('rejects an archive without the dataset folder, leaving nothing behind', async () => {
    const src = await tempDir();
    await mkdir(join(src, 'something-else'));
    await writeFile(join(src, 'something-else', 'x.bin'), 'x');
    const { file, md5 } = await pack(src, 'something-else');
    const cache = await tempDir();
    await expect(
      fetchDataset('cifar10', cache, { url: pathToFileURL(file).href, md5 }),
    ).rejects.toThrow(/does not contain cifar-10-batches-bin/);
    expect(await readdir(cache)).toEqual([]);
  });
});
