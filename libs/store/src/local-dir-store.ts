import { createHash, randomBytes } from 'node:crypto';
import type { BigIntStats, Dirent } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { KeyedMutex, mapLimit } from './concurrency.js';
import { ConflictError, InvalidKeyError, NotFoundError } from './errors.js';
import { isSha256Hex, sha256Hex } from './hash.js';
import {
  assertValidKey,
  assertValidPrefix,
  isValidKey,
  normalizeMetadata,
  SIDECAR_SUFFIX,
} from './keys.js';
import type { ObjectInfo, ObjectStore, PutOptions } from './object-store.js';

export interface SweepTempOptions {
  /**
   * Leave files modified more recently than this alone, since they may belong to a writer
   * that is still running (default 15 minutes). Pass 0 only when no writer can be active.
   */
  olderThanMs?: number;
  /**
   * Also remove, whatever their age, temp files whose writer (the process id in their name) is
   * no longer running on this machine. Only for a directory no other machine writes to.
   */
  deadWriters?: boolean;
}

/**
 * What `<key>.meta.json` holds. The data file and its sidecar cannot be renamed into place
 * together, so the sidecar names the exact file it describes: inode and mtime, as fstat saw the
 * temp file before the rename (rename keeps both). A sidecar that doesn't match the file beside
 * it is stale and is ignored.
 */
interface Sidecar {
  v: 1;
  sha256: string;
  size: number;
  metadata: Record<string, string>;
  ino: string;
  mtimeNs: string;
}

const DEFAULT_SWEEP_AGE_MS = 15 * 60_000;
const TEMP_FILE = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/;
const LIST_CONCURRENCY = 16;
const HASH_CHUNK = 1 << 20;

/**
 * An ObjectStore in a local directory: the embedded default. Object `a/b` is the file
 * `<root>/a/b`, byte for byte, with its digest and metadata in `<root>/a/b.meta.json`.
 *
 * Writes are atomic and durable: bytes go to a temp file in the target's directory, which is
 * fsynced, renamed over the target, and then the directory is fsynced. Readers and restarted
 * processes therefore see the old object or the new one, never part of one.
 *
 * Unlike S3, a key cannot be both an object and a prefix of other keys ('a' and 'a/b'), since
 * one path cannot be both a file and a directory; such a put throws InvalidKeyError.
 */
export class LocalDirStore implements ObjectStore {
  readonly root: string;
  // Without this, two puts of one key from this process could interleave their two renames
  // and leave one's data beside the other's sidecar: still correct, but metadata would be lost.
  readonly #commits = new KeyedMutex();

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  describe(): string {
    return `local-dir:${this.root}`;
  }

  async put(key: string, data: Uint8Array, options: PutOptions = {}): Promise<ObjectInfo> {
    assertValidKey(key);
    const metadata = normalizeMetadata(options.metadata);
    const sha256 = sha256Hex(data);
    const target = this.#pathOf(key);
    const dir = path.dirname(target);
    await this.#ensureDir(key, dir);

    const temp = await writeDurableTemp(dir, path.basename(target), data);
    const sidecar = encodeSidecar({
      v: 1,
      sha256,
      size: data.byteLength,
      metadata,
      ino: temp.stats.ino.toString(),
      mtimeNs: temp.stats.mtimeNs.toString(),
    });
    try {
      await this.#commits.run(key, async () => {
        if (options.ifNoneMatch === '*') {
          // link() fails if the target exists, which rename() cannot. The sidecar follows the
          // data here because until the link succeeds the sidecar path may be another writer's.
          await linkExclusive(key, temp.path, target);
          await writeFileAtomic(target + SIDECAR_SUFFIX, sidecar);
        } else {
          // Sidecar first: if we die between the renames, a new key has no data file and so
          // does not exist, and an overwritten key keeps its old bytes beside a sidecar that no
          // longer matches them (and is therefore ignored).
          await writeFileAtomic(target + SIDECAR_SUFFIX, sidecar);
          await renameInto(key, temp.path, target);
        }
      });
    } finally {
      await rm(temp.path, { force: true });
    }
    await fsyncDir(dir);
    return { key, size: data.byteLength, sha256, modified: temp.stats.mtime, metadata };
  }

  async get(key: string): Promise<Uint8Array> {
    assertValidKey(key);
    try {
      const buffer = await readFile(this.#pathOf(key));
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      if (isMissing(error)) throw new NotFoundError(key, { cause: error });
      throw error;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    return this.#info(key);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertValidPrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    const keys: string[] = [];
    await this.#collectKeys(slash < 0 ? '' : prefix.slice(0, slash), prefix, keys);
    keys.sort(compareKeys);
    const infos = await mapLimit(keys, LIST_CONCURRENCY, (key) => this.#info(key));
    // A key deleted between readdir and stat simply drops out.
    return infos.filter((info): info is ObjectInfo => info !== undefined);
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    const file = this.#pathOf(key);
    // Data first: dying in between leaves an orphaned sidecar, which list ignores and
    // sweepTemp removes, rather than an object that has lost its metadata.
    const removed = await this.#commits.run(key, async () => {
      const existed = await unlinkIfFile(file);
      await unlinkIfFile(file + SIDECAR_SUFFIX);
      return existed;
    });
    if (removed) await fsyncDir(path.dirname(file));
  }

  /**
   * Removes temp files left by writers that crashed, and sidecars whose object is gone.
   * @returns the removed files, relative to the root.
   */
  async sweepTemp(options: SweepTempOptions = {}): Promise<string[]> {
    const cutoff = Date.now() - (options.olderThanMs ?? DEFAULT_SWEEP_AGE_MS);
    const removed: string[] = [];
    const sweep = async (dir: string): Promise<void> => {
      for (const entry of await readdirIfExists(dir)) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          if (isValidKey(entry.name)) await sweep(file);
          continue;
        }
        if (!entry.isFile()) continue;
        const orphan =
          entry.name.endsWith(SIDECAR_SUFFIX) &&
          !entry.name.startsWith('.') &&
          !(await exists(file.slice(0, -SIDECAR_SUFFIX.length)));
        const temp = TEMP_FILE.exec(entry.name);
        if (!orphan && !temp) continue;
        const stats = await lstat(file).catch(() => undefined);
        if (stats === undefined) continue;
        const writerGone =
          options.deadWriters === true && temp !== null && !running(Number(temp[1]));
        if (stats.mtimeMs > cutoff && !writerGone) continue;
        await rm(file, { force: true });
        removed.push(path.relative(this.root, file).split(path.sep).join('/'));
      }
    };
    await sweep(this.root);
    return removed.sort(compareKeys);
  }

  #pathOf(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  async #ensureDir(key: string, dir: string): Promise<void> {
    let created: string | undefined;
    try {
      created = await mkdir(dir, { recursive: true });
    } catch (error) {
      if (hasCode(error, 'ENOTDIR', 'EEXIST')) {
        throw new InvalidKeyError(key, 'a leading part of it is an existing object');
      }
      throw error;
    }
    if (created === undefined) return;
    // A new directory's entry lives in its parent; without these fsyncs a power cut could
    // lose the directory along with the fully synced object inside it.
    for (let d = dir; ; d = path.dirname(d)) {
      await fsyncDir(path.dirname(d));
      if (d === created || d === path.dirname(d)) break;
    }
  }

  async #info(key: string): Promise<ObjectInfo | undefined> {
    const file = this.#pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    try {
      // Everything below reads through one handle, so an overwrite racing us cannot mix the
      // size of one version with the digest of another.
      const stats = await handle.stat({ bigint: true });
      if (!stats.isFile()) return undefined;
      const size = Number(stats.size);
      const sidecar = await readSidecar(file + SIDECAR_SUFFIX);
      if (sidecar !== undefined && describesFile(sidecar, stats)) {
        return {
          key,
          size,
          sha256: sidecar.sha256,
          modified: stats.mtime,
          metadata: sidecar.metadata,
        };
      }
      // A writer died between the two renames, or is between them now, or the file was edited
      // in place. Only the metadata is lost; the digest is recomputed from the bytes.
      return { key, size, sha256: await hashHandle(handle), modified: stats.mtime, metadata: {} };
    } finally {
      await handle.close();
    }
  }

  async #collectKeys(dirKey: string, prefix: string, out: string[]): Promise<void> {
    const dir = dirKey === '' ? this.root : this.#pathOf(dirKey);
    for (const entry of await readdirIfExists(dir)) {
      const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
      // Temp files, sidecars and anything not written through a store fail key validation.
      if (!isValidKey(key)) continue;
      if (entry.isDirectory()) {
        if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) {
          await this.#collectKeys(key, prefix, out);
        }
      } else if (entry.isFile() && key.startsWith(prefix)) {
        out.push(key);
      }
    }
  }
}

function compareKeys(a: string, b: string): number {
  // Code-unit order, which for the key alphabet is S3's byte order; localeCompare is not.
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether a process with this id runs on this machine (EPERM: it does, as another user). */
function running(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return hasCode(error, 'EPERM');
  }
}

function tempPath(dir: string, base: string): string {
  return path.join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

async function writeDurableTemp(
  dir: string,
  base: string,
  data: Uint8Array,
): Promise<{ path: string; stats: BigIntStats }> {
  const file = tempPath(dir, base);
  const handle = await open(file, 'wx');
  try {
    await handle.writeFile(data);
    // The bytes must be on disk before a rename makes them reachable, or a power cut could
    // publish a file of the right name and the wrong (zero) contents.
    await handle.sync();
    const stats = await handle.stat({ bigint: true });
    await handle.close();
    return { path: file, stats };
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(file, { force: true });
    throw error;
  }
}

async function writeFileAtomic(file: string, data: Uint8Array): Promise<void> {
  const temp = await writeDurableTemp(path.dirname(file), path.basename(file), data);
  try {
    await rename(temp.path, file);
  } catch (error) {
    await rm(temp.path, { force: true });
    throw error;
  }
}

async function renameInto(key: string, from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if (hasCode(error, 'EISDIR', 'ENOTEMPTY', 'EEXIST', 'EPERM') && (await isDirectory(to))) {
      throw new InvalidKeyError(key, 'it is a prefix of existing keys');
    }
    throw error;
  }
}

async function linkExclusive(key: string, from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (error) {
    if (!hasCode(error, 'EEXIST')) throw error;
    if (await isDirectory(to)) throw new InvalidKeyError(key, 'it is a prefix of existing keys');
    throw new ConflictError(`an object already exists at key '${key}'`, { cause: error });
  }
}

async function fsyncDir(dir: string): Promise<void> {
  // Windows cannot open a directory for fsync, and NTFS orders its metadata anyway.
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems (certain FUSE and network mounts) do not support fsync on directories.
    if (!hasCode(error, 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP')) throw error;
  } finally {
    await handle.close();
  }
}

function encodeSidecar(sidecar: Sidecar): Uint8Array {
  return Buffer.from(`${JSON.stringify(sidecar)}\n`);
}

async function readSidecar(file: string): Promise<Sidecar | undefined> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    // Missing or unreadable: the caller falls back to hashing, so there is nothing to report.
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const s = value as Partial<Record<keyof Sidecar, unknown>>;
  if (
    s.v !== 1 ||
    !isSha256Hex(s.sha256) ||
    typeof s.size !== 'number' ||
    typeof s.ino !== 'string' ||
    typeof s.mtimeNs !== 'string' ||
    typeof s.metadata !== 'object' ||
    s.metadata === null
  ) {
    return undefined;
  }
  const metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(s.metadata)) {
    if (typeof entry !== 'string') return undefined;
    metadata[name] = entry;
  }
  return { v: 1, sha256: s.sha256, size: s.size, metadata, ino: s.ino, mtimeNs: s.mtimeNs };
}

function describesFile(sidecar: Sidecar, stats: BigIntStats): boolean {
  return (
    sidecar.size === Number(stats.size) &&
    sidecar.ino === stats.ino.toString() &&
    sidecar.mtimeNs === stats.mtimeNs.toString()
  );
}

async function hashHandle(handle: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(HASH_CHUNK);
  for (let position = 0; ;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest('hex');
}

async function readdirIfExists(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
}

async function unlinkIfFile(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (error) {
    if (isMissing(error)) return false;
    // unlink() on a directory is EISDIR on Linux and EPERM on macOS; either way, no object.
    if (hasCode(error, 'EPERM') && (await isDirectory(file))) return false;
    throw error;
  }
}

async function exists(file: string): Promise<boolean> {
  return (await lstat(file).catch(() => undefined)) !== undefined;
}

async function isDirectory(file: string): Promise<boolean> {
  return (await lstat(file).catch(() => undefined))?.isDirectory() ?? false;
}

function hasCode(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}

/** The key names no file: absent, or a path through a file, or a directory. */
function isMissing(error: unknown): boolean {
  return hasCode(error, 'ENOENT', 'ENOTDIR', 'EISDIR');
}
