import { InvalidKeyError, InvalidMetadataError } from './errors.js';

/**
 * Suffix of LocalDirStore's metadata sidecars. Reserved in every store so that a tree of
 * objects can be mirrored between a directory and a bucket without collisions.
 */
export const SIDECAR_SUFFIX = '.meta.json';

// S3 allows 1024 bytes. Segments stay well under NAME_MAX (255) so that a segment plus the
// temp-file and sidecar affixes LocalDirStore adds still fits in one file name.
const MAX_KEY_LENGTH = 1024;
const MAX_SEGMENT_LENGTH = 200;

// Lower case only: macOS and Windows file systems fold case, so 'Expert' and 'expert' would
// silently become one file there. No leading dot: that rules out '.' and '..', and leaves
// dot-names free for temp files.
const SEGMENT = /^[a-z0-9_-][a-z0-9._-]*$/;

// `slack` lets assertValidPrefix probe with one extra character without tripping length limits.
function keyProblem(key: string, slack = 0): string | undefined {
  if (key.length === 0) return 'empty';
  if (key.length > MAX_KEY_LENGTH + slack) return `longer than ${MAX_KEY_LENGTH} characters`;
  if (key.startsWith('/')) return 'starts with /';
  if (key.endsWith('/')) return 'ends with /';
  for (const segment of key.split('/')) {
    if (segment.length === 0) return 'has an empty segment';
    if (segment === '.' || segment === '..') return `has a '${segment}' segment`;
    if (segment.length > MAX_SEGMENT_LENGTH + slack) {
      return `has a segment longer than ${MAX_SEGMENT_LENGTH} characters`;
    }
    if (!SEGMENT.test(segment)) {
      return 'segments must be [a-z0-9._-] and must not start with a dot';
    }
    if (segment.endsWith(SIDECAR_SUFFIX)) return `segments must not end with '${SIDECAR_SUFFIX}'`;
  }
  return undefined;
}

export function isValidKey(key: string): boolean {
  return keyProblem(key) === undefined;
}

/** @throws InvalidKeyError unless `key` is portable across every store implementation. */
export function assertValidKey(key: string): void {
  const problem = keyProblem(key);
  if (problem !== undefined) throw new InvalidKeyError(key, problem);
}

/**
 * A list prefix is any leading part of a valid key, so '' and 'objects/' are fine and a partial
 * last segment ('expert') is too.
 */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  // Complete the partial last segment with a character no rule objects to, then check as a key.
  const problem = keyProblem(`${prefix}x`, 1);
  if (problem !== undefined) throw new InvalidKeyError(prefix, `prefix ${problem}`);
}

const METADATA_KEY = /^[a-z0-9][a-z0-9-]*$/;
const METADATA_VALUE = /^[\x20-\x7e]*$/;
const MAX_METADATA_BYTES = 2048;

/**
 * The metadata entry under which S3ObjectStore keeps each object's digest (`x-amz-meta-sha256`).
 * Reserved in every store so that metadata means the same wherever an object is kept.
 */
export const DIGEST_METADATA_KEY = 'sha256';
// S3 counts the digest entry against the same 2 KiB as the caller's entries.
const DIGEST_METADATA_BYTES = DIGEST_METADATA_KEY.length + 64;

/** @returns a copy, so later changes by the caller cannot alter what was stored. */
export function normalizeMetadata(
  metadata: Record<string, string> | undefined,
): Record<string, string> {
  const result: Record<string, string> = {};
  if (metadata === undefined) return result;
  let bytes = 0;
  for (const [name, value] of Object.entries(metadata)) {
    if (!METADATA_KEY.test(name)) {
      throw new InvalidMetadataError(`key ${JSON.stringify(name)} must be [a-z0-9-]`);
    }
    if (name === DIGEST_METADATA_KEY) {
      throw new InvalidMetadataError(`key '${name}' is reserved for the object's digest`);
    }
    if (typeof value !== 'string' || !METADATA_VALUE.test(value)) {
      throw new InvalidMetadataError(`value of '${name}' must be a printable ASCII string`);
    }
    // HTTP strips whitespace around header values, so S3 would hand back a different value.
    if (value !== value.trim()) {
      throw new InvalidMetadataError(`value of '${name}' must not start or end with a space`);
    }
    bytes += name.length + value.length;
    result[name] = value;
  }
  const limit = MAX_METADATA_BYTES - DIGEST_METADATA_BYTES;
  if (bytes > limit) {
    throw new InvalidMetadataError(`${bytes} bytes exceeds the ${limit}-byte limit`);
  }
  return result;
}
