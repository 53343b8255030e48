import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';
import { CIFAR10_FOLDER, CIFAR10_TEST_FILES, CIFAR10_TRAIN_FILES, CIFAR100_FOLDER } from './cifar';
import { DataError, errMessage } from './errors';

export type RemoteDatasetName = 'cifar10' | 'cifar100';

interface RemoteDataset {
  url: string;
  md5: string;
  /** Top-level folder inside the archive, kept as the folder name in the cache. */
  folder: string;
  /** Files that must be in that folder for the dataset to count as present. */
  files: string[];
}

export const REMOTE_DATASETS: Readonly<Record<RemoteDatasetName, Readonly<RemoteDataset>>> = {
  cifar10: {
    url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
    md5: 'c32a1d4ab5d03f1284b67883e8d87530',
    folder: CIFAR10_FOLDER,
    files: [...CIFAR10_TRAIN_FILES, ...CIFAR10_TEST_FILES, 'batches.meta.txt'],
  },
  cifar100: {
    url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
    md5: '03b5dce01913d631647c71ecec9e9cb8',
    folder: CIFAR100_FOLDER,
    files: ['train.bin', 'test.bin', 'fine_label_names.txt', 'coarse_label_names.txt'],
  },
};

/** The part of the WHATWG Response that downloading needs; global `fetch` satisfies it. */
export interface FetchResponseLike {
  ok: boolean;
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  body: AsyncIterable<Uint8Array> | null;
}

export type FetchLike = (
  url: string,
  init: { signal?: AbortSignal | undefined },
) => Promise<FetchResponseLike>;

export interface FetchDatasetOptions {
  /** Archive location: https://, http:// or file://. Default: the official archive. */
  url?: string;
  /** Expected MD5 of the archive (hex). Default: the official archive's. */
  md5?: string;
  /** Used for non-file URLs instead of the global fetch (tests, proxies). */
  fetch?: FetchLike;
  /** Called as bytes arrive; totalBytes is undefined when the server does not say. */
  onProgress?: (receivedBytes: number, totalBytes: number | undefined) => void;
  /** Download again even when the dataset is already in the cache. */
  force?: boolean;
  signal?: AbortSignal;
}

export interface FetchResult {
  /** Folder holding the dataset files, e.g. `<cacheDir>/cifar-10-batches-bin`. */
  dir: string;
  /** Spec for openDataset, e.g. `cifar10:<dir>`. */
  spec: string;
  /** False when the cache already held it. */
  downloaded: boolean;
}

/**
 * Makes `cacheDir/<archive folder>` hold the dataset, downloading and verifying it when absent.
 * Everything is written under temporary names in `cacheDir` and moved into place with a single
 * rename, so an interrupted or failed fetch never leaves a half-populated dataset behind.
 */
export async function fetchDataset(
  name: RemoteDatasetName,
  cacheDir: string,
  options: FetchDatasetOptions = {},
): Promise<FetchResult> {
  const remote = REMOTE_DATASETS[name] as RemoteDataset | undefined;
  if (remote === undefined) throw new Error(`unknown dataset ${JSON.stringify(name)}`);
  const url = options.url ?? remote.url;
  const md5 = (options.md5 ?? remote.md5).toLowerCase();
  const target = join(cacheDir, remote.folder);
  const result = (downloaded: boolean): FetchResult => ({
    dir: target,
    spec: `${name}:${target}`,
    downloaded,
  });
  if (!options.force && (await hasFiles(target, remote.files))) return result(false);

  await mkdir(cacheDir, { recursive: true });
  const tmp = join(
    cacheDir,
    `.${remote.folder}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  const archive = `${tmp}.tar.gz`;
  const unpackDir = `${tmp}.d`;
  const oldDir = `${tmp}.old`;
  try {
    const actual = await download(url, archive, options);
    if (actual !== md5) {
      throw new DataError(url, `MD5 mismatch: expected ${md5}, got ${actual}`);
    }
    await mkdir(unpackDir);
    try {
      await tar.x({ file: archive, cwd: unpackDir, strict: true });
    } catch (err) {
      throw new DataError(url, `cannot unpack archive (${errMessage(err)})`, { cause: err });
    }
    const unpacked = join(unpackDir, remote.folder);
    if (!(await hasFiles(unpacked, remote.files))) {
      throw new DataError(
        url,
        `archive does not contain ${remote.folder}/ with ${remote.files.join(', ')}`,
      );
    }
    if (options.force && (await exists(target))) await rename(target, oldDir);
    try {
      await rename(unpacked, target);
    } catch (err) {
      // A concurrent fetch of the same dataset may have won the race; its copy is as good.
      if (!(await hasFiles(target, remote.files))) throw err;
    }
    return result(true);
  } finally {
    await Promise.all(
      [archive, unpackDir, oldDir].map((p) => rm(p, { recursive: true, force: true })),
    );
  }
}

/** Streams `url` to `file`, hashing on the way; returns the MD5 hex digest. */
async function download(url: string, file: string, options: FetchDatasetOptions): Promise<string> {
  let source: AsyncIterable<Uint8Array>;
  let total: number | undefined;
  if (url.startsWith('file:')) {
    const path = fileURLToPath(url);
    try {
      total = (await stat(path)).size;
    } catch (err) {
      throw new DataError(url, `cannot read archive (${errMessage(err)})`, { cause: err });
    }
    source = createReadStream(path);
  } else {
    const fetchFn: FetchLike = options.fetch ?? globalThis.fetch;
    let res: FetchResponseLike;
    try {
      res = await fetchFn(url, { signal: options.signal });
    } catch (err) {
      throw new DataError(url, `download failed (${errMessage(err)})`, { cause: err });
    }
    if (!res.ok || res.body === null) {
      throw new DataError(url, `download failed: HTTP ${res.status} ${res.statusText}`.trim());
    }
    const length = Number(res.headers.get('content-length'));
    // With a Content-Encoding, fetch decodes the body and the length no longer matches it.
    const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
    total = !encoded && Number.isFinite(length) && length > 0 ? length : undefined;
    source = res.body;
  }
  const hash = createHash('md5');
  let received = 0;
  const { onProgress, signal } = options;
  try {
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          received += chunk.length;
          onProgress?.(received, total);
          yield chunk;
        }
      },
      createWriteStream(file),
      signal ? { signal } : {},
    );
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(url, `download failed (${errMessage(err)})`, { cause: err });
  }
  if (total !== undefined && received !== total) {
    throw new DataError(url, `download truncated: got ${received} of ${total} bytes`);
  }
  return hash.digest('hex');
}

async function hasFiles(dir: string, files: string[]): Promise<boolean> {
  for (const f of files) {
    try {
      if (!(await stat(join(dir, f))).isFile()) return false;
    } catch {
      return false;
    }
  }
  return true;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
