import { ConflictError, NotFoundError } from './errors.js';
import { sha256Hex } from './hash.js';
import { assertValidKey, assertValidPrefix, normalizeMetadata } from './keys.js';
import type { ObjectInfo, ObjectStore, PutOptions } from './object-store.js';

interface Entry {
  data: Uint8Array;
  info: ObjectInfo;
}

/**
 * An ObjectStore in process memory, for tests and throwaway runs. It applies the same key and
 * metadata rules as the durable stores, so code tested against it does not break on them.
 */
export class MemoryStore implements ObjectStore {
  readonly #objects = new Map<string, Entry>();

  describe(): string {
    return 'memory';
  }

  async put(key: string, data: Uint8Array, options: PutOptions = {}): Promise<ObjectInfo> {
    assertValidKey(key);
    const metadata = normalizeMetadata(options.metadata);
    if (options.ifNoneMatch === '*' && this.#objects.has(key)) {
      throw new ConflictError(`an object already exists at key '${key}'`);
    }
    // Copy both ways so that neither side can change stored bytes by mutating its buffer.
    const copy = data.slice();
    const info = {
      key,
      size: copy.byteLength,
      sha256: sha256Hex(copy),
      modified: new Date(),
      metadata,
    };
    this.#objects.set(key, { data: copy, info });
    return cloneInfo(info);
  }

  async get(key: string): Promise<Uint8Array> {
    assertValidKey(key);
    const entry = this.#objects.get(key);
    if (entry === undefined) throw new NotFoundError(key);
    return entry.data.slice();
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    const entry = this.#objects.get(key);
    return entry === undefined ? undefined : cloneInfo(entry.info);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertValidPrefix(prefix);
    return [...this.#objects.keys()]
      .filter((key) => key.startsWith(prefix))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      .map((key) => cloneInfo(this.#objects.get(key)!.info));
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    this.#objects.delete(key);
  }
}

function cloneInfo(info: ObjectInfo): ObjectInfo {
  return { ...info, modified: new Date(info.modified), metadata: { ...info.metadata } };
}
