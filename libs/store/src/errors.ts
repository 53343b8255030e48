/**
 * Errors thrown by stores. Each carries a stable `code` so callers can branch on it even when
 * two copies of this package end up in one process and `instanceof` stops working.
 */
export class StoreError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The key names no object. */
export class NotFoundError extends StoreError {
  readonly key: string;

  constructor(key: string, options?: ErrorOptions) {
    super('ERR_STORE_NOT_FOUND', `no object at key '${key}'`, options);
    this.key = key;
  }
}

/** The key is not one every store implementation can hold safely. */
export class InvalidKeyError extends StoreError {
  readonly key: string;

  constructor(key: string, reason: string) {
    super('ERR_STORE_INVALID_KEY', `invalid key ${JSON.stringify(key)}: ${reason}`);
    this.key = key;
  }
}

/** User metadata that S3 could not carry as `x-amz-meta-*` headers. */
export class InvalidMetadataError extends StoreError {
  constructor(reason: string) {
    super('ERR_STORE_INVALID_METADATA', `invalid object metadata: ${reason}`);
  }
}

/** Stored bytes or documents are not what a reference or a manifest says they should be. */
export class IntegrityError extends StoreError {
  readonly key: string;

  constructor(key: string, message: string, options?: ErrorOptions) {
    super('ERR_STORE_INTEGRITY', `${key}: ${message}`, options);
    this.key = key;
  }
}

/**
 * Another writer got there first: a conditional put found the key taken, or a manifest update
 * found a revision other than the one it expected. Re-read and retry.
 */
export class ConflictError extends StoreError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_STORE_CONFLICT', message, options);
  }
}
