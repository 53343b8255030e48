import { IntegrityError, InvalidMetadataError } from './errors.js';
import { isSha256Hex, sha256Hex } from './hash.js';
import { isValidKey } from './keys.js';
import type { ObjectStore } from './object-store.js';

/** A pointer to stored bytes that lets a reader check it got exactly those bytes. */
export interface ObjectRef {
  key: string;
  sha256: string;
  size: number;
  /** What the bytes are, e.g. 'expert', 'router', 'lineage', 'receipt'. */
  kind: string;
}

export interface PutContentOptions {
  kind: string;
  /** Stored with the object the first time its bytes are written; see putContent. */
  metadata?: Record<string, string>;
}

/** Where content-addressed objects live: `objects/<sha256>`. */
export function contentKey(sha256: string): string {
  if (!isSha256Hex(sha256)) throw new TypeError(`not a lower-case hex SHA-256: '${sha256}'`);
  return `objects/${sha256}`;
}

const KIND = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * Stores `data` under its own digest and returns a reference to it. Identical bytes are
 * written once: if the object is already there with the right digest the write is skipped, so
 * the object keeps the metadata of whoever stored it first. An object whose stored digest is
 * wrong (a damaged file) is rewritten.
 */
export async function putContent(
  store: ObjectStore,
  data: Uint8Array,
  options: PutContentOptions,
): Promise<ObjectRef> {
  const { kind } = options;
  if (!KIND.test(kind)) {
    throw new InvalidMetadataError(`kind ${JSON.stringify(kind)} must be [a-z0-9._-]`);
  }
  const sha256 = sha256Hex(data);
  const ref: ObjectRef = { key: contentKey(sha256), sha256, size: data.byteLength, kind };
  const existing = await store.head(ref.key);
  if (existing?.sha256 !== sha256 || existing.size !== ref.size) {
    await store.put(ref.key, data, { metadata: { ...options.metadata, kind } });
  }
  return ref;
}

/** Reads the object `ref` names. @throws IntegrityError unless its bytes hash to `ref.sha256`. */
export async function getVerified(store: ObjectStore, ref: ObjectRef): Promise<Uint8Array> {
  const data = await store.get(ref.key);
  if (data.byteLength !== ref.size) {
    throw new IntegrityError(ref.key, `expected ${ref.size} bytes, found ${data.byteLength}`);
  }
  const actual = sha256Hex(data);
  if (actual !== ref.sha256) {
    throw new IntegrityError(ref.key, `expected sha256 ${ref.sha256}, found ${actual}`);
  }
  return data;
}

/**
 * Checks, from the store's recorded digest and without reading the bytes, that `ref` names an
 * existing object. @throws IntegrityError if it is missing or differs.
 */
export async function verifyRef(store: ObjectStore, ref: ObjectRef): Promise<void> {
  const info = await store.head(ref.key);
  if (info === undefined) throw new IntegrityError(ref.key, 'referenced object does not exist');
  if (info.size !== ref.size || info.sha256 !== ref.sha256) {
    throw new IntegrityError(
      ref.key,
      `expected ${ref.size} bytes with sha256 ${ref.sha256}, ` +
        `store has ${info.size} bytes with sha256 ${info.sha256}`,
    );
  }
}

export function isObjectRef(value: unknown): value is ObjectRef {
  if (typeof value !== 'object' || value === null) return false;
  const ref = value as Partial<Record<keyof ObjectRef, unknown>>;
  return (
    typeof ref.key === 'string' &&
    isValidKey(ref.key) &&
    isSha256Hex(ref.sha256) &&
    typeof ref.size === 'number' &&
    Number.isSafeInteger(ref.size) &&
    ref.size >= 0 &&
    typeof ref.kind === 'string' &&
    KIND.test(ref.kind)
  );
}
