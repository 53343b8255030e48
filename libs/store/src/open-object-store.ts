import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalDirStore } from './local-dir-store.js';
import type { ObjectStore } from './object-store.js';
import { S3ObjectStore } from './s3-object-store.js';
import type { S3ObjectStoreConfig } from './s3-object-store.js';

export type StoreEnv = Readonly<Record<string, string | undefined>>;

export type ObjectStoreLocation =
  { kind: 'local-dir'; root: string } | { kind: 's3'; config: S3ObjectStoreConfig };

const CREDENTIALS_HELP =
  'set LETHE_S3_ACCESS_KEY and LETHE_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)';
const S3_PARAMS = new Set(['endpoint', 'region', 'conditional-put']);

/**
 * Opens the store `url` names; see `parseObjectStoreUrl`. An S3 bucket is created if missing.
 */
export async function openObjectStore(
  url: string,
  env: StoreEnv = process.env,
): Promise<ObjectStore> {
  const location = parseObjectStoreUrl(url, env);
  return location.kind === 'local-dir'
    ? new LocalDirStore(location.root)
    : S3ObjectStore.open(location.config);
}

/**
 * - `file:DIR`, `file:///abs/dir` or a plain path: a local directory (relative to the cwd).
 * - `s3://bucket/prefix?endpoint=http://127.0.0.1:9000[&region=…]`: a bucket, or a key prefix
 *   inside one. `&conditional-put=emulate` checks manifest writes in this process instead of by
 *   the server: only for test servers that ignore If-None-Match (s3rver), with one writer. The endpoint may come from `LETHE_S3_ENDPOINT` instead. Credentials come only
 *   from the environment, never from the URL, so that URLs can be logged: `LETHE_S3_ACCESS_KEY`
 *   and `LETHE_S3_SECRET_KEY` (with `LETHE_S3_SESSION_TOKEN`), else `AWS_ACCESS_KEY_ID` and
 *   `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`).
 */
export function parseObjectStoreUrl(url: string, env: StoreEnv = process.env): ObjectStoreLocation {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  // A one-letter scheme is a Windows drive ('C:\data'), so a path.
  if (scheme === undefined || scheme.length === 1) return localDir(url, url);
  if (scheme === 'file') {
    return url.startsWith('file://')
      ? localDir(fileURLToPath(url), url)
      : localDir(url.slice('file:'.length), url);
  }
  if (scheme === 's3') return { kind: 's3', config: s3Config(url, env) };
  throw new Error(
    `unsupported object store URL scheme '${scheme}:': use a path, file:DIR or s3://bucket/prefix`,
  );
}

function localDir(dir: string, url: string): ObjectStoreLocation {
  if (dir === '') throw new Error(`object store URL '${url}' names no directory`);
  return { kind: 'local-dir', root: path.resolve(dir) };
}

function s3Config(url: string, env: StoreEnv): S3ObjectStoreConfig {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('malformed s3:// URL: expected s3://bucket/prefix?endpoint=http://host:port');
  }
  // Not echoed: whatever sits before the '@' may be a secret.
  if (parsed.username !== '' || parsed.password !== '') {
    throw new Error(`s3:// URLs must not carry credentials; ${CREDENTIALS_HELP}`);
  }
  const bucket = parsed.hostname;
  if (bucket === '') throw new Error(`s3:// URL names no bucket: '${url}'`);
  const prefix = decodeURIComponent(parsed.pathname).replace(/^\/+/, '');
  for (const name of parsed.searchParams.keys()) {
    if (!S3_PARAMS.has(name)) {
      throw new Error(
        `unknown parameter '${name}' in s3://${bucket}: expected endpoint, region, conditional-put`,
      );
    }
  }

  const endpointUrl = parsed.searchParams.get('endpoint') ?? env.LETHE_S3_ENDPOINT;
  if (endpointUrl === undefined || endpointUrl === '') {
    throw new Error(
      `s3://${bucket} needs an endpoint: add ?endpoint=http://host:port or set LETHE_S3_ENDPOINT`,
    );
  }
  const endpoint = parseEndpoint(endpointUrl);
  const region = parsed.searchParams.get('region') ?? undefined;
  const conditional = parsed.searchParams.get('conditional-put') ?? 'server';
  if (conditional !== 'server' && conditional !== 'emulate') {
    throw new Error(`conditional-put must be server or emulate, got '${conditional}'`);
  }

  return {
    ...endpoint,
    ...credentials(bucket, env),
    bucket,
    ...(prefix === '' ? {} : { prefix }),
    ...(region === undefined ? {} : { region }),
    ...(conditional === 'emulate' ? { conditionalPut: 'emulate-in-process' as const } : {}),
  };
}

function parseEndpoint(value: string): Pick<S3ObjectStoreConfig, 'endPoint' | 'port' | 'useSSL'> {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`S3 endpoint must be a URL such as http://127.0.0.1:9000, got '${value}'`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new Error(`S3 endpoint URLs must not carry credentials; ${CREDENTIALS_HELP}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`S3 endpoint must be http:// or https://, got '${url.protocol}'`);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '') {
    throw new Error(`S3 endpoint must have no path or query: '${value}'`);
  }
  const useSSL = url.protocol === 'https:';
  return {
    endPoint: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? (useSSL ? 443 : 80) : Number(url.port),
    useSSL,
  };
}

function credentials(
  bucket: string,
  env: StoreEnv,
): Pick<S3ObjectStoreConfig, 'accessKey' | 'secretKey' | 'sessionToken'> {
  const sets = [
    ['LETHE_S3_ACCESS_KEY', 'LETHE_S3_SECRET_KEY', 'LETHE_S3_SESSION_TOKEN'],
    ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'],
  ] as const;
  for (const [accessVar, secretVar, tokenVar] of sets) {
    const accessKey = env[accessVar] ?? '';
    const secretKey = env[secretVar] ?? '';
    if (accessKey === '' && secretKey === '') continue;
    // Half a pair is a mistake; silently falling through to the other pair would hide it.
    if (accessKey === '' || secretKey === '') {
      const missing = accessKey === '' ? accessVar : secretVar;
      throw new Error(`S3 credentials for s3://${bucket}: ${missing} is not set`);
    }
    const sessionToken = env[tokenVar] ?? '';
    return { accessKey, secretKey, ...(sessionToken === '' ? {} : { sessionToken }) };
  }
  throw new Error(`no S3 credentials for s3://${bucket}: ${CREDENTIALS_HELP}`);
}
