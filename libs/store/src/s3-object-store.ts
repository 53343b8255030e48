import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { finished } from 'node:stream/promises';
import { XMLParser } from 'fast-xml-parser';
import { Client } from 'minio';
import { KeyedMutex, mapLimit } from './concurrency.js';
import { ConflictError, IntegrityError, NotFoundError, StoreError } from './errors.js';
import { isSha256Hex, sha256Hex } from './hash.js';
import {
  assertValidKey,
  assertValidPrefix,
  DIGEST_METADATA_KEY,
  isValidKey,
  normalizeMetadata,
} from './keys.js';
import type { ObjectInfo, ObjectStore, PutOptions } from './object-store.js';

/**
 * How `ifNoneMatch: '*'` is enforced.
 *
 * - `'server'` (default): the put carries `If-None-Match: *`, which MinIO and AWS S3 enforce
 *   atomically, across processes and machines. Before its first conditional put the store checks
 *   once that the server refuses a second such put, and throws rather than pretend if it does not.
 * - `'emulate-in-process'`: for test servers that ignore the header (s3rver). A head-then-put
 *   under a lock held in this process only: racing writers in one process get one winner, but
 *   two processes can both "win" and the later one silently replaces the earlier. Never use it
 *   against a bucket shared between processes.
 */
export type ConditionalPutMode = 'server' | 'emulate-in-process';

export interface S3ObjectStoreConfig {
  /** Host name or IP address of the S3 endpoint, without scheme or port. */
  endPoint: string;
  /** Default 443 with SSL, 80 without. */
  port?: number;
  /** Default true. */
  useSSL?: boolean;
  accessKey: string;
  secretKey: string;
  sessionToken?: string;
  /** Created by `open` if it does not exist. */
  bucket: string;
  /** Default: asked of the server (MinIO and s3rver answer us-east-1). */
  region?: string;
  /** Key prefix inside the bucket, so that several stores can share one bucket. Default ''. */
  prefix?: string;
  /** Objects larger than this are uploaded in parts of this size. 5 MiB to 5 GiB; default 64 MiB. */
  partSize?: number;
  /** Keys asked for per ListObjectsV2 request, 1 to 1000; default 1000. */
  listPageSize?: number;
  conditionalPut?: ConditionalPutMode;
}

const MiB = 1024 * 1024;
const DEFAULT_PART_SIZE = 64 * MiB;
const MIN_PART_SIZE = 5 * MiB;
const MAX_SINGLE_PUT = 5 * 1024 * MiB;
const PART_CONCURRENCY = 4;
const HEAD_CONCURRENCY = 16;
const META_PREFIX = 'x-amz-meta-';
const DIGEST_HEADER = `${META_PREFIX}${DIGEST_METADATA_KEY}`;
// A leading dot makes the name an invalid key, so list() never shows a probe left by a crash.
const PROBE_PREFIX = '.lethe-probe-';
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PRECONDITION_CODES = new Set(['PreconditionFailed', 'ConditionalRequestConflict']);

// Shared by every store in the process, so two instances over one bucket also take turns.
const emulationLocks = new KeyedMutex();

// Tag values stay strings: minio's own list parser turns keys such as '007' or '0x10' into
// numbers and hands back '7' and '16' (and '' for '0').
const listParser = new XMLParser({
  parseTagValue: false,
  isArray: (name) => name === 'Contents',
});

interface ParsedHead {
  info: Omit<ObjectInfo, 'sha256'>;
  /** Undefined when the object was not written by an S3ObjectStore. */
  sha256: string | undefined;
  etag: string;
}

/**
 * An ObjectStore in an S3 bucket (MinIO, AWS S3, or anything speaking the protocol), through the
 * `minio` client. Object `a/b` is `<prefix>a/b` in the bucket.
 *
 * S3 makes every put atomic: a reader sees the old object or the new one, never part of one, and
 * a multipart upload appears only when it completes. Each object carries the SHA-256 of its
 * bytes as `x-amz-meta-sha256`; `get` checks the bytes against it.
 */
export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  /** '' or ending in '/'. */
  readonly prefix: string;
  readonly #client: Client;
  // Retrying a conditional put whose first attempt landed would report our own write as a
  // conflict, so those requests go through a client that never retries.
  readonly #onceClient: Client;
  readonly #region: string | undefined;
  readonly #endpoint: string;
  readonly #partSize: number;
  readonly #listPageSize: number;
  readonly #conditionalPut: ConditionalPutMode;
  #honoursIfNoneMatch: boolean | undefined;
  #probe: Promise<boolean> | undefined;

  private constructor(config: S3ObjectStoreConfig) {
    if (!BUCKET_NAME.test(config.bucket) || config.bucket.includes('..')) {
      throw new TypeError(`invalid S3 bucket name '${config.bucket}'`);
    }
    if (!config.accessKey || !config.secretKey) {
      throw new TypeError('S3ObjectStore needs an access key and a secret key');
    }
    const prefix = config.prefix ?? '';
    const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    if (bare !== '' && !isValidKey(bare)) {
      throw new TypeError(`S3 key prefix must be '' or a valid key: '${prefix}'`);
    }
    const partSize = config.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_SINGLE_PUT) {
      throw new RangeError(`partSize must be an integer from 5 MiB to 5 GiB, got ${partSize}`);
    }
    const pageSize = config.listPageSize ?? 1000;
    if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
      throw new RangeError(`listPageSize must be an integer from 1 to 1000, got ${pageSize}`);
    }

    const useSSL = config.useSSL ?? true;
    const port = config.port ?? (useSSL ? 443 : 80);
    const options = {
      endPoint: config.endPoint,
      port,
      useSSL,
      accessKey: config.accessKey,
      secretKey: config.secretKey,
      ...(config.sessionToken === undefined ? {} : { sessionToken: config.sessionToken }),
      ...(config.region === undefined ? {} : { region: config.region }),
    };
    this.#client = new Client(options);
    this.#onceClient = new Client({ ...options, retryOptions: { disableRetry: true } });
    this.bucket = config.bucket;
    this.prefix = bare === '' ? '' : `${bare}/`;
    this.#region = config.region;
    const host = config.endPoint.includes(':') ? `[${config.endPoint}]` : config.endPoint;
    this.#endpoint = `${useSSL ? 'https' : 'http'}://${host}:${port}`;
    this.#partSize = partSize;
    this.#listPageSize = pageSize;
    this.#conditionalPut = config.conditionalPut ?? 'server';
  }

  /** Connects, creating the bucket if it does not exist yet. */
  static async open(config: S3ObjectStoreConfig): Promise<S3ObjectStore> {
    const store = new S3ObjectStore(config);
    await store.#ensureBucket();
    return store;
  }

  describe(): string {
    return `s3://${this.bucket}/${this.prefix} at ${this.#endpoint}`;
  }

  async put(key: string, data: Uint8Array, options: PutOptions = {}): Promise<ObjectInfo> {
    assertValidKey(key);
    const metadata = normalizeMetadata(options.metadata);
    const sha256 = sha256Hex(data);
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      [DIGEST_HEADER]: sha256,
    };
    for (const [name, value] of Object.entries(metadata)) headers[META_PREFIX + name] = value;

    const name = this.#objectName(key);
    let etag: string;
    try {
      if (options.ifNoneMatch === '*') {
        etag = await this.#putIfAbsent(key, name, body, headers);
      } else if (body.byteLength > this.#partSize) {
        etag = await this.#putMultipart(name, body, headers);
      } else {
        etag = await this.#putSingle(this.#client, name, body, headers);
      }
    } catch (error) {
      throw this.#failure('put', key, error);
    }
    // S3 answers a PUT without Last-Modified. If someone replaced the object before our HEAD,
    // its ETag differs and our own clock stands in, at S3's one-second resolution.
    const after = await this.#headObject(name).catch(() => undefined);
    const modified =
      after !== undefined && sameEtag(after.etag, etag)
        ? after.info.modified
        : new Date(Math.floor(Date.now() / 1000) * 1000);
    return { key, size: body.byteLength, sha256, modified, metadata };
  }

  async get(key: string): Promise<Uint8Array> {
    assertValidKey(key);
    let body: Buffer;
    let expected: string | undefined;
    try {
      const fetched = await this.#fetch(this.#objectName(key));
      if (fetched === undefined) throw new NotFoundError(key);
      body = fetched.body;
      // The digest of this same response, so that an overwrite racing the read cannot pair
      // one version's bytes with another's digest.
      expected = parseHead(key, fetched.headers).sha256;
    } catch (error) {
      throw this.#failure('get', key, error);
    }
    if (expected !== undefined) {
      const actual = sha256Hex(body);
      if (actual !== expected) {
        throw new IntegrityError(key, `bytes hash to sha256 ${actual}, metadata says ${expected}`);
      }
    }
    return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    try {
      return await this.#info(key);
    } catch (error) {
      throw this.#failure('head', key, error);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertValidPrefix(prefix);
    const full = this.prefix + prefix;
    let names: string[];
    try {
      names = await this.#listNames(full);
    } catch (error) {
      throw this.#failure('list', prefix, error);
    }
    // Probes, LocalDirStore sidecars and objects written by other tools fail key validation.
    const keys = names
      .filter((name) => name.startsWith(full))
      .map((name) => name.slice(this.prefix.length))
      .filter(isValidKey)
      .sort(compareKeys);
    // ListObjectsV2 carries no user metadata, so the digest takes one HEAD per object.
    const infos = await mapLimit(keys, HEAD_CONCURRENCY, async (key) => {
      try {
        return await this.#info(key);
      } catch (error) {
        throw this.#failure('head', key, error);
      }
    });
    // A key deleted between the listing and its HEAD simply drops out.
    return infos.filter((info): info is ObjectInfo => info !== undefined);
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.#client.removeObject(this.bucket, this.#objectName(key));
    } catch (error) {
      // S3 answers 204 for a missing key; some compatible servers say so with a 404.
      if (isNotFound(error)) return;
      throw this.#failure('delete', key, error);
    }
  }

  #objectName(key: string): string {
    return this.prefix + key;
  }

  async #ensureBucket(): Promise<void> {
    try {
      if (await this.#client.bucketExists(this.bucket)) return;
      try {
        await this.#client.makeBucket(this.bucket, this.#region ?? 'us-east-1');
      } catch (error) {
        // Another process may have created it since we looked. S3 tells its owner
        // BucketAlreadyOwnedByYou; s3rver (and AWS, when another account owns the name) say
        // BucketAlreadyExists, so then check that the bucket is really ours to use.
        const code = s3Code(error);
        if (code === 'BucketAlreadyOwnedByYou') return;
        if (code === 'BucketAlreadyExists' && (await this.#client.bucketExists(this.bucket))) {
          return;
        }
        throw error;
      }
    } catch (error) {
      throw new Error(
        `S3 open of bucket '${this.bucket}' at ${this.#endpoint} failed: ${reason(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  async #putSingle(
    client: Client,
    name: string,
    body: Buffer,
    headers: Record<string, string>,
  ): Promise<string> {
    const response = await client.makeRequestAsync(
      {
        method: 'PUT',
        bucketName: this.bucket,
        objectName: name,
        // Lets the server reject bytes damaged on the way, also over HTTPS where the payload
        // is not signed.
        headers: { ...headers, 'content-md5': md5Base64(body) },
      },
      body,
      // Taken by status, since not every server explains a 412 with an XML body.
      [200, 412],
    );
    response.resume();
    await finished(response);
    if (response.statusCode === 412) {
      throw Object.assign(new Error('precondition failed'), { code: 'PreconditionFailed' });
    }
    return stripQuotes(response.headers.etag ?? '');
  }

  /**
   * Always one PUT: on a multipart upload the condition belongs on CompleteMultipartUpload,
   * which the minio client cannot send it with. One PUT takes up to 5 GiB, more than a
   * Uint8Array holds on Node 20.
   */
  async #putIfAbsent(
    key: string,
    name: string,
    body: Buffer,
    headers: Record<string, string>,
  ): Promise<string> {
    if (body.byteLength > MAX_SINGLE_PUT) {
      throw new RangeError(`a conditional put holds at most 5 GiB, got ${body.byteLength} bytes`);
    }
    const conditional = { ...headers, 'if-none-match': '*' };
    if (this.#conditionalPut === 'emulate-in-process') {
      const lock = `${this.#endpoint}\n${this.bucket}\n${name}`;
      return emulationLocks.run(lock, async () => {
        if ((await this.#headObject(name)) !== undefined) throw conflict(key);
        // The header goes too, so a server that does enforce it still guards other processes.
        return this.#putSingle(this.#onceClient, name, body, conditional);
      });
    }
    await this.#assertHonoursIfNoneMatch();
    return this.#putSingle(this.#onceClient, name, body, conditional);
  }

  async #assertHonoursIfNoneMatch(): Promise<void> {
    if (this.#honoursIfNoneMatch === undefined) {
      this.#probe ??= this.#probeIfNoneMatch().finally(() => {
        this.#probe = undefined;
      });
      this.#honoursIfNoneMatch = await this.#probe;
    }
    if (!this.#honoursIfNoneMatch) {
      throw new Error(
        `the S3 server at ${this.#endpoint} ignores 'If-None-Match: *', so a conditional put ` +
          'could replace another writer’s object; use MinIO or AWS S3 (or, in single-process ' +
          "tests only, conditionalPut: 'emulate-in-process')",
      );
    }
  }

  /** Writes a scratch object twice, the second time conditionally, and sees which way it goes. */
  async #probeIfNoneMatch(): Promise<boolean> {
    const name = `${this.prefix}${PROBE_PREFIX}${randomBytes(8).toString('hex')}`;
    const empty = Buffer.alloc(0);
    await this.#putSingle(this.#client, name, empty, {});
    try {
      await this.#putSingle(this.#onceClient, name, empty, { 'if-none-match': '*' });
      return false;
    } catch (error) {
      if (isPreconditionFailure(error)) return true;
      throw error;
    } finally {
      await this.#client.removeObject(this.bucket, name).catch(() => undefined);
    }
  }

  /**
   * Our own multipart upload rather than minio's putObject, which resumes any unfinished
   * upload of the same key: it would finish a crashed or concurrent writer's upload, keeping
   * that writer's metadata (digest included) for our bytes.
   */
  async #putMultipart(
    name: string,
    body: Buffer,
    headers: Record<string, string>,
  ): Promise<string> {
    const uploadId = await this.#client.initiateNewMultipartUpload(this.bucket, name, headers);
    try {
      const count = Math.ceil(body.byteLength / this.#partSize);
      const numbers = Array.from({ length: count }, (_, i) => i + 1);
      const parts = await mapLimit(numbers, PART_CONCURRENCY, async (part) => {
        const chunk = body.subarray((part - 1) * this.#partSize, part * this.#partSize);
        const { etag } = await this.#client.uploadPart(
          {
            bucketName: this.bucket,
            objectName: name,
            uploadID: uploadId,
            partNumber: part,
            headers: { 'content-md5': md5Base64(chunk) },
          },
          chunk,
        );
        return { part, etag };
      });
      const { etag } = await this.#client.completeMultipartUpload(
        this.bucket,
        name,
        uploadId,
        parts,
      );
      return stripQuotes(etag);
    } catch (error) {
      // Parts of an unfinished upload are kept (and billed) until it is aborted.
      await this.#client.abortMultipartUpload(this.bucket, name, uploadId).catch(() => undefined);
      throw error;
    }
  }

  async #info(key: string): Promise<ObjectInfo | undefined> {
    const name = this.#objectName(key);
    const head = await this.#headObject(name);
    if (head === undefined) return undefined;
    if (head.sha256 !== undefined) return { ...head.info, sha256: head.sha256 };
    // No digest: the object came from another tool, e.g. a LocalDirStore tree mirrored into the
    // bucket. Hash its bytes, as LocalDirStore does for a file without a sidecar, taking size
    // and metadata from the same response so that they describe the bytes hashed.
    const fetched = await this.#fetch(name);
    if (fetched === undefined) return undefined;
    return { ...parseHead(key, fetched.headers).info, sha256: sha256Hex(fetched.body) };
  }

  async #headObject(name: string): Promise<ParsedHead | undefined> {
    const response = await this.#client.makeRequestAsync(
      { method: 'HEAD', bucketName: this.bucket, objectName: name },
      '',
      [200, 404],
    );
    response.resume();
    await finished(response);
    if (response.statusCode === 404) return undefined;
    return parseHead(name.slice(this.prefix.length), response.headers);
  }

  async #fetch(name: string): Promise<{ headers: IncomingHttpHeaders; body: Buffer } | undefined> {
    let response: IncomingMessage;
    try {
      response = await this.#client.makeRequestAsync(
        { method: 'GET', bucketName: this.bucket, objectName: name },
        '',
        [200],
      );
    } catch (error) {
      if (s3Code(error) === 'NoSuchKey') return undefined;
      throw error;
    }
    return { headers: response.headers, body: await readBody(response) };
  }

  async #listNames(prefix: string): Promise<string[]> {
    const names: string[] = [];
    let token = '';
    for (;;) {
      const query = [
        'encoding-type=url',
        'list-type=2',
        `max-keys=${this.#listPageSize}`,
        `prefix=${awsEscape(prefix)}`,
        ...(token === '' ? [] : [`continuation-token=${awsEscape(token)}`]),
      ]
        .sort()
        .join('&');
      const response = await this.#client.makeRequestAsync(
        { method: 'GET', bucketName: this.bucket, query },
        '',
        [200],
      );
      const page = parseListPage((await readBody(response)).toString('utf8'));
      names.push(...page.keys);
      if (!page.truncated) return names;
      if (page.next === '' || page.next === token) {
        throw new Error('ListObjectsV2 response is truncated but gives no new continuation token');
      }
      token = page.next;
    }
  }

  /** StoreErrors pass through; anything else becomes one line naming the operation and key. */
  #failure(operation: string, key: string, error: unknown): Error {
    if (error instanceof StoreError) return error;
    if (operation === 'put' && isPreconditionFailure(error)) return conflict(key, error);
    return new Error(`S3 ${operation} of '${key}' in ${this.describe()} failed: ${reason(error)}`, {
      cause: error,
    });
  }
}

function conflict(key: string, cause?: unknown): ConflictError {
  return new ConflictError(`an object already exists at key '${key}'`, { cause });
}

function parseHead(key: string, headers: IncomingHttpHeaders): ParsedHead {
  const metadata: Record<string, string> = {};
  let sha256: string | undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(META_PREFIX) || typeof value !== 'string') continue;
    if (name === DIGEST_HEADER) sha256 = value;
    else metadata[name.slice(META_PREFIX.length)] = value;
  }
  if (sha256 !== undefined && !isSha256Hex(sha256)) {
    throw new IntegrityError(key, `metadata sha256 is not a lower-case hex SHA-256: '${sha256}'`);
  }
  const size = Number(headers['content-length']);
  const modified = new Date(headers['last-modified'] ?? Number.NaN);
  if (!Number.isSafeInteger(size) || Number.isNaN(modified.getTime())) {
    throw new Error('response lacks a valid Content-Length or Last-Modified');
  }
  return {
    info: { key, size, modified, metadata },
    sha256,
    etag: stripQuotes(headers.etag ?? ''),
  };
}

function parseListPage(xml: string): { keys: string[]; truncated: boolean; next: string } {
  const parsed: unknown = listParser.parse(xml);
  const result = (parsed as { ListBucketResult?: unknown }).ListBucketResult;
  if (typeof result !== 'object' || result === null) {
    throw new Error('ListObjectsV2 response has no ListBucketResult');
  }
  const r = result as {
    Contents?: unknown;
    IsTruncated?: unknown;
    NextContinuationToken?: unknown;
  };
  const keys: string[] = [];
  for (const item of Array.isArray(r.Contents) ? (r.Contents as unknown[]) : []) {
    const key = (item as { Key?: unknown } | null)?.Key;
    if (typeof key !== 'string') continue;
    try {
      // encoding-type=url, as S3 writes it: '+' for space, %XX for the rest.
      keys.push(decodeURIComponent(key.replace(/\+/g, ' ')));
    } catch {
      // Not a name we could have written; list() drops it like any other invalid key.
    }
  }
  return {
    keys,
    truncated: r.IsTruncated === 'true',
    next: typeof r.NextContinuationToken === 'string' ? r.NextContinuationToken : '',
  };
}

async function readBody(response: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const expected = response.headers['content-length'];
  if (expected !== undefined && Number(expected) !== body.byteLength) {
    throw new Error(`response ended after ${body.byteLength} of ${expected} bytes`);
  }
  return body;
}

function md5Base64(data: Uint8Array): string {
  return createHash('md5').update(data).digest('base64');
}

/** RFC 3986 escaping as SigV4 canonicalises query strings. */
function awsEscape(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function stripQuotes(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}

function sameEtag(a: string, b: string): boolean {
  return a !== '' && a === b;
}

function compareKeys(a: string, b: string): number {
  // Code-unit order, which for the key alphabet is S3's byte order; localeCompare is not.
  return a < b ? -1 : a > b ? 1 : 0;
}

function s3Code(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isNotFound(error: unknown): boolean {
  const code = s3Code(error);
  return code === 'NoSuchKey' || code === 'NotFound';
}

function isPreconditionFailure(error: unknown): boolean {
  return PRECONDITION_CODES.has(s3Code(error) ?? '');
}

function reason(error: unknown): string {
  const code = s3Code(error);
  const message = error instanceof Error ? error.message : String(error);
  const text = code !== undefined && !message.startsWith(code) ? `${code}: ${message}` : message;
  return text.replace(/\s+/g, ' ').trim() || 'unknown error';
}
