/** What a store knows about one object without reading its bytes. */
export interface ObjectInfo {
  key: string;
  size: number;
  /** Lower-case hex SHA-256 of the object's bytes. */
  sha256: string;
  modified: Date;
  metadata: Record<string, string>;
}

export interface PutOptions {
  /**
   * User metadata, carried by S3 as `x-amz-meta-*` headers: keys are lower-case
   * `[a-z0-9-]` other than the reserved `sha256`, values printable ASCII without surrounding
   * spaces, at most 1978 bytes in all (S3's 2 KiB less the digest entry S3ObjectStore adds).
   */
  metadata?: Record<string, string>;
  /**
   * `'*'`: write only if no object exists at the key, else throw `ConflictError` and leave the
   * existing object alone (S3 `If-None-Match: *`). Two racing writers cannot both succeed.
   */
  ifNoneMatch?: '*';
}

/**
 * A flat namespace of immutable-per-write blobs, shaped after S3 so a bucket and a local
 * directory are interchangeable. Keys are '/'-separated relative paths (see `assertValidKey`).
 *
 * Every put is all-or-nothing: a reader, or a process that starts after a crash, sees either
 * the previous object or the new one, never a mixture or a prefix.
 */
export interface ObjectStore {
  put(key: string, data: Uint8Array, options?: PutOptions): Promise<ObjectInfo>;
  /** @throws NotFoundError when no object exists at `key`. */
  get(key: string): Promise<Uint8Array>;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Objects whose key starts with `prefix` (a plain string prefix, as in S3), sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Succeeds whether or not the object exists. */
  delete(key: string): Promise<void>;
  /** A one-line description for logs. Never includes credentials. */
  describe(): string;
}
