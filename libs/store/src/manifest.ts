import { randomBytes } from 'node:crypto';
import { KeyedMutex, mapLimit } from './concurrency.js';
import { isObjectRef, verifyRef } from './content.js';
import type { ObjectRef } from './content.js';
import { ConflictError, IntegrityError, NotFoundError } from './errors.js';
import { sha256Hex } from './hash.js';
import { isValidKey } from './keys.js';
import type { ObjectStore } from './object-store.js';

export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The published state of a model: which stored object is the current version of each part. */
export interface Manifest {
  schema: 1;
  /** 1 for the first manifest, then +1 per update; never reused, never decreasing. */
  revision: number;
  /** ISO 8601. */
  updatedAt: string;
  /** E.g. 'router', 'expert/0', 'lineage/expert/0'. */
  objects: Record<string, ObjectRef>;
  /** Model configuration and anything else a reader needs alongside the objects. */
  attributes: Record<string, JsonValue>;
}

/** Edits the draft in place or returns a replacement. `revision` and `updatedAt` are ignored. */
// `void` rather than `undefined`, so that a block-bodied arrow function that only edits the
// draft is accepted: TypeScript infers `void` for it, which `undefined` does not admit.
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type
export type ManifestMutator = (draft: Manifest) => Manifest | void;

export interface ManifestUpdateOptions {
  /** Fail with ConflictError unless the current revision is this (0: no manifest yet). */
  expectRevision?: number;
}

export interface ManifestStoreOptions {
  /** Key prefix ending in '/', to keep several models in one store. Default ''. */
  prefix?: string;
}

export interface ManifestRevisionInfo {
  revision: number;
  key: string;
  sha256: string;
  size: number;
  modified: Date;
}

/** What `repair()` found wrong with `manifest.json`, and the revision it points at now. */
export interface ManifestRepair {
  /** `damaged`: unreadable or malformed; `stale`: behind the newest published revision. */
  problem: 'damaged' | 'stale';
  /** The revision the old pointer named (undefined when damaged). */
  from: number | undefined;
  to: number;
}

/** What `manifest.json` holds: the latest revision and the digest of its document. */
interface Pointer {
  schema: 1;
  revision: number;
  key: string;
  sha256: string;
}

const REVISION_DIGITS = 12;
const REVISION_FILE = /^(\d{12})\.json$/;
const VERIFY_CONCURRENCY = 8;
const MAX_JSON_DEPTH = 64;

// Keyed by store, so that two ManifestStores over one store in one process also take turns.
const locks = new WeakMap<ObjectStore, KeyedMutex>();

function lockFor(store: ObjectStore): KeyedMutex {
  let lock = locks.get(store);
  if (lock === undefined) locks.set(store, (lock = new KeyedMutex()));
  return lock;
}

/**
 * Versioned manifests. Each revision is an immutable document at
 * `<prefix>manifests/<revision, 12 digits>.json`, created with a conditional put so that two
 * writers can never both publish the same revision; `<prefix>manifest.json` then points at it.
 *
 * A revision is published once its document exists. If a writer dies before repointing,
 * readers roll forward past the pointer to the newest consecutive revision, so a crash at any
 * moment leaves either the previous manifest or the new one, and never wedges later writers.
 */
export class ManifestStore {
  readonly #store: ObjectStore;
  readonly #prefix: string;

  constructor(store: ObjectStore, options: ManifestStoreOptions = {}) {
    const prefix = options.prefix ?? '';
    if (prefix !== '' && !(prefix.endsWith('/') && isValidKey(prefix.slice(0, -1)))) {
      throw new TypeError(`manifest prefix must be '' or a valid key followed by '/': '${prefix}'`);
    }
    this.#store = store;
    this.#prefix = prefix;
  }

  /** The latest manifest, or undefined if none was ever published. */
  async read(): Promise<Manifest | undefined> {
    const { revision, pointer } = await this.#latest();
    if (revision === 0) return undefined;
    return this.#readRevision(revision, revision === pointer?.revision ? pointer : undefined);
  }

  /**
   * Rewrites `manifest.json` when it is damaged (unreadable, malformed) or stale (a writer died
   * between publishing a revision and repointing), from the newest published revision — which
   * must itself be valid: a damaged newest revision is an IntegrityError, never a silent roll
   * back to an older one (that could bring back data a later revision forgot).
   * @returns what was repaired, or undefined when the pointer was sound.
   */
  repair(): Promise<ManifestRepair | undefined> {
    return lockFor(this.#store).run(this.#prefix, async () => {
      const { revision, pointer, damaged } = await this.#latest();
      if (revision === 0 || (!damaged && pointer?.revision === revision)) return undefined;
      const key = this.#revisionKey(revision);
      const bytes = await this.#store.get(key);
      parseManifest(key, revision, bytes);
      await this.#writePointer(revision, key, bytes);
      return { problem: damaged ? 'damaged' : 'stale', from: pointer?.revision, to: revision };
    });
  }

  /**
   * Checks that a new revision could be published now: the current one reads and verifies, and
   * the store takes (and deletes) a small object beside the revisions. Jobs call it before
   * hours of work whose result they could not otherwise store.
   */
  async checkPublishable(): Promise<void> {
    await this.read();
    const probe = `${this.#prefix}manifests/publish-check-${randomBytes(8).toString('hex')}`;
    await this.#store.put(probe, Buffer.from('publish check\n'));
    await this.#store.delete(probe);
  }

  /** @throws NotFoundError if that revision was never published. */
  async readRevision(revision: number): Promise<Manifest> {
    return this.#readRevision(revision, undefined);
  }

  /** Published revisions, oldest first. */
  async history(): Promise<ManifestRevisionInfo[]> {
    const dir = `${this.#prefix}manifests/`;
    const revisions: ManifestRevisionInfo[] = [];
    for (const info of await this.#store.list(dir)) {
      const match = REVISION_FILE.exec(info.key.slice(dir.length));
      if (match === null) continue;
      const { key, sha256, size, modified } = info;
      revisions.push({ revision: Number(match[1]), key, sha256, size, modified });
    }
    return revisions;
  }

  /**
   * Publishes the next revision: `mutate` edits a copy of the current manifest, every object
   * the result names is checked against the store, and only then is the new revision written.
   * Updates from one process run one at a time; across processes, the loser of a race gets
   * ConflictError.
   *
   * @throws ConflictError if `expectRevision` is stale or another writer published first.
   * @throws IntegrityError if a named object is missing or does not match its reference.
   */
  update(mutate: ManifestMutator, options: ManifestUpdateOptions = {}): Promise<Manifest> {
    return lockFor(this.#store).run(this.#prefix, () => this.#update(mutate, options));
  }

  async #update(mutate: ManifestMutator, options: ManifestUpdateOptions): Promise<Manifest> {
    const { revision: current } = await this.#latest();
    if (options.expectRevision !== undefined && options.expectRevision !== current) {
      throw new ConflictError(
        `manifest is at revision ${current}, expected ${options.expectRevision}`,
      );
    }
    const base: Manifest =
      current === 0
        ? { schema: 1, revision: 0, updatedAt: '', objects: {}, attributes: {} }
        : await this.readRevision(current);
    const draft = structuredClone(base);
    const edited = mutate(draft) ?? draft;
    const next: Manifest = {
      schema: 1,
      revision: current + 1,
      updatedAt: new Date().toISOString(),
      objects: checkObjects(edited.objects),
      attributes: checkAttributes(edited.attributes),
    };

    const key = this.#revisionKey(next.revision);
    // Serialise before any await: the mutator may still hold references into `edited`.
    const body = Buffer.from(`${JSON.stringify(next, null, 2)}\n`);

    await mapLimit(Object.values(next.objects), VERIFY_CONCURRENCY, (ref) =>
      verifyRef(this.#store, ref),
    );

    try {
      await this.#store.put(key, body, { ifNoneMatch: '*' });
    } catch (error) {
      if (error instanceof ConflictError) {
        throw new ConflictError(`revision ${next.revision} was published by another writer`, {
          cause: error,
        });
      }
      throw error;
    }
    await this.#writePointer(next.revision, key, body);
    return parseManifest(key, next.revision, body);
  }

  async #writePointer(revision: number, key: string, body: Uint8Array): Promise<void> {
    const pointer: Pointer = { schema: 1, revision, key, sha256: sha256Hex(body) };
    await this.#store.put(this.#pointerKey(), Buffer.from(`${JSON.stringify(pointer)}\n`));
  }

  async #latest(): Promise<{ revision: number; pointer: Pointer | undefined; damaged: boolean }> {
    let pointer: Pointer | undefined;
    let revision: number;
    let damaged = false;
    try {
      pointer = await this.#readPointer();
      revision = pointer?.revision ?? 0;
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      // A damaged pointer is only a shortcut lost: the newest revision document is the truth.
      damaged = true;
      revision = (await this.history()).reduce((max, r) => Math.max(max, r.revision), 0);
    }
    // Roll forward over revisions published by a writer that died before repointing, or that
    // is about to repoint. The pointer is a shortcut; the immutable documents are the truth.
    while ((await this.#store.head(this.#revisionKey(revision + 1))) !== undefined) revision++;
    return { revision, pointer, damaged };
  }

  async #readPointer(): Promise<Pointer | undefined> {
    const key = this.#pointerKey();
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(await this.#store.get(key)).toString('utf8'));
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw new IntegrityError(key, 'manifest pointer is not valid JSON', { cause: error });
    }
    const p = (typeof value === 'object' && value !== null ? value : {}) as Partial<
      Record<keyof Pointer, unknown>
    >;
    if (
      p.schema !== 1 ||
      !isRevision(p.revision) ||
      p.key !== this.#revisionKey(p.revision) ||
      typeof p.sha256 !== 'string'
    ) {
      throw new IntegrityError(key, 'manifest pointer is malformed');
    }
    return { schema: 1, revision: p.revision, key: p.key, sha256: p.sha256 };
  }

  async #readRevision(revision: number, pointer: Pointer | undefined): Promise<Manifest> {
    if (!isRevision(revision)) throw new RangeError(`not a manifest revision: ${revision}`);
    const key = this.#revisionKey(revision);
    const bytes = await this.#store.get(key);
    if (pointer !== undefined && sha256Hex(bytes) !== pointer.sha256) {
      throw new IntegrityError(key, `content does not match the digest in ${this.#pointerKey()}`);
    }
    return parseManifest(key, revision, bytes);
  }

  #pointerKey(): string {
    return `${this.#prefix}manifest.json`;
  }

  #revisionKey(revision: number): string {
    return `${this.#prefix}manifests/${String(revision).padStart(REVISION_DIGITS, '0')}.json`;
  }
}

function isRevision(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function parseManifest(key: string, revision: number, bytes: Uint8Array): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new IntegrityError(key, 'manifest is not valid JSON', { cause: error });
  }
  const m = (typeof value === 'object' && value !== null ? value : {}) as Partial<
    Record<keyof Manifest, unknown>
  >;
  try {
    if (m.schema !== 1) throw new TypeError(`unsupported schema ${JSON.stringify(m.schema)}`);
    if (m.revision !== revision) throw new TypeError(`says revision ${String(m.revision)}`);
    if (typeof m.updatedAt !== 'string') throw new TypeError('updatedAt is not a string');
    return {
      schema: 1,
      revision,
      updatedAt: m.updatedAt,
      objects: checkObjects(m.objects),
      attributes: checkAttributes(m.attributes),
    };
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    throw new IntegrityError(key, `malformed manifest: ${error.message}`, { cause: error });
  }
}

/** @returns the objects sorted by name, so that documents diff cleanly between revisions. */
function checkObjects(value: unknown): Record<string, ObjectRef> {
  if (!isPlainObject(value)) throw new TypeError('manifest objects must be a plain object');
  const objects: Record<string, ObjectRef> = {};
  for (const name of Object.keys(value).sort()) {
    const ref = value[name];
    if (name.length === 0) throw new TypeError('manifest object names must not be empty');
    if (!isObjectRef(ref)) throw new TypeError(`manifest object '${name}' is not an ObjectRef`);
    objects[name] = { key: ref.key, sha256: ref.sha256, size: ref.size, kind: ref.kind };
  }
  return objects;
}

function checkAttributes(value: unknown): Record<string, JsonValue> {
  if (!isPlainObject(value)) throw new TypeError('manifest attributes must be a plain object');
  checkJson(value, 'attributes', 0);
  return value as Record<string, JsonValue>;
}

// JSON.stringify would quietly turn NaN into null and drop undefined, functions and class
// instances' prototypes; refuse them instead of publishing something other than was asked.
function checkJson(value: unknown, at: string, depth: number): void {
  if (depth > MAX_JSON_DEPTH) throw new TypeError(`${at} is nested too deeply`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`${at} is not a finite number`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkJson(item, `${at}[${i}]`, depth + 1));
    return;
  }
  if (isPlainObject(value)) {
    for (const [name, item] of Object.entries(value)) checkJson(item, `${at}.${name}`, depth + 1);
    return;
  }
  throw new TypeError(`${at} is not a JSON value`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
