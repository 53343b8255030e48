import { Command } from 'commander';
import { readTlsMaterial, TlsFileError, type TlsMaterial } from '@lethe/rpc';
import { parseObjectStoreUrl } from '@lethe/store';
import { z } from 'zod';

/** How a worker process runs: flags, else environment variables, else defaults. */
export interface WorkerConfig {
  /** Interface to listen on. */
  host: string;
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** Prometheus metrics at GET /metrics on this port (same host); 0 disables them. */
  metricsPort: number;
  /** host:port the coordinator reaches this worker at; default host:actualPort. */
  advertise?: string;
  /** The coordinator's host:port (its Registry service); unset runs without one. */
  coordinator?: string;
  /** Object store URL for checkpoints: a path, file:DIR or s3://bucket/prefix?endpoint=…. */
  store?: string;
  /** Stable name shown in listings, e.g. the pod name. */
  name?: string;
  /** Experts held at once (Capacity.max_experts). */
  maxExperts: number;
  /** On SIGTERM/SIGINT, how long in-flight calls may take before they are cancelled. */
  graceMs: number;
  /**
   * PEM certificate and key of this worker (its TLS server certificate, and its client
   * certificate when it calls the coordinator's Registry) and the cluster CA, which every
   * caller's client certificate must chain to. All three or none (plaintext).
   */
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/** A bad flag or environment value; the message names the key. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$/;
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `expected an integer ${min}..${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `expected an integer ${min}..${max}`);

const hostPort = z
  .string()
  .regex(HOST_PORT, 'expected host:port')
  .refine((s) => {
    const port = Number(HOST_PORT.exec(s)?.[2]);
    return port >= 1 && port <= 65_535;
  }, 'expected host:port with a port 1..65535');

interface Field<T> {
  flag: string;
  env: string;
  description: string;
  schema: z.ZodType<T, string>;
  default?: string;
}

const field = <T>(f: Field<T>): Field<T> => f;

/** Every setting: its flag, its environment variable and how its value is checked. */
export const CONFIG_FIELDS = {
  host: field({
    flag: '--host',
    env: 'LETHE_WORKER_HOST',
    description: 'interface to listen on',
    schema: z.string().regex(HOST, 'expected a host name or IP address'),
    default: '127.0.0.1',
  }),
  port: field({
    flag: '--port',
    env: 'LETHE_WORKER_PORT',
    description: 'port to listen on; 0 picks a free one',
    schema: integer(0, 65_535),
    default: '0',
  }),
  metricsPort: field({
    flag: '--metrics-port',
    env: 'LETHE_METRICS_PORT',
    description: 'Prometheus metrics (GET /metrics) on this port, same host; 0 disables them',
    schema: integer(0, 65_535),
    default: '0',
  }),
  advertise: field({
    flag: '--advertise',
    env: 'LETHE_WORKER_ADVERTISE',
    description: 'host:port the coordinator reaches this worker at (default host:actualPort)',
    schema: hostPort,
  }),
  coordinator: field({
    flag: '--coordinator',
    env: 'LETHE_COORDINATOR',
    description: "the coordinator's host:port; unset runs without one",
    schema: hostPort,
  }),
  store: field({
    flag: '--store',
    env: 'LETHE_STORE',
    description: 'object store for checkpoints: DIR, file:DIR or s3://bucket/prefix?endpoint=URL',
    schema: z.string().min(1, 'expected a path or URL'),
  }),
  name: field({
    flag: '--name',
    env: 'LETHE_WORKER_NAME',
    description: 'stable name shown in listings, e.g. the pod name',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'expected 1-63 of A-Z, a-z, 0-9, _ . -'),
  }),
  maxExperts: field({
    flag: '--max-experts',
    env: 'LETHE_MAX_EXPERTS',
    description: 'experts held at once',
    schema: integer(1, 1024),
    default: '8',
  }),
  graceMs: field({
    flag: '--grace-ms',
    env: 'LETHE_WORKER_GRACE_MS',
    description: 'on SIGTERM, ms in-flight calls may take before they are cancelled',
    schema: integer(0, 3_600_000),
    default: '10000',
  }),
  tlsCert: field({
    flag: '--tls-cert',
    env: 'LETHE_TLS_CERT',
    description:
      'PEM certificate of this worker, server and client side (mutual TLS; with --tls-key and --tls-ca)',
    schema: z.string().min(1, 'expected a file'),
  }),
  tlsKey: field({
    flag: '--tls-key',
    env: 'LETHE_TLS_KEY',
    description: 'PEM private key of --tls-cert',
    schema: z.string().min(1, 'expected a file'),
  }),
  tlsCa: field({
    flag: '--tls-ca',
    env: 'LETHE_TLS_CA',
    description: 'PEM CA certificates of the cluster: callers must present a certificate it signed',
    schema: z.string().min(1, 'expected a file'),
  }),
} as const;

type Key = keyof typeof CONFIG_FIELDS;

/** The commander program for the worker's flags (no action: parse only). */
export function workerProgram(version: string): Command {
  const program = new Command()
    .name('lethe-worker')
    .description(
      'Lethe worker: hosts experts and trains them for the coordinator (gRPC Worker service).',
    )
    .version(version)
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  for (const f of Object.values(CONFIG_FIELDS)) {
    program.option(`${f.flag} <value>`, `${f.description} [env ${f.env}]`);
  }
  return program;
}

/**
 * Reads the configuration from command-line arguments (without `node main.js`) and the
 * environment; a flag wins over its environment variable. Throws ConfigError naming the key of
 * the first bad value, and commander's CommanderError for unknown flags, --help and --version.
 */
export function parseWorkerConfig(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  version = '0.0.0',
): WorkerConfig {
  const program = workerProgram(version);
  program.parse([...args], { from: 'user' });
  const flags = program.opts<Partial<Record<Key, string>>>();
  const values: Partial<Record<Key, unknown>> = {};
  for (const [key, f] of Object.entries(CONFIG_FIELDS) as [Key, Field<unknown>][]) {
    const fromFlag = flags[key];
    const fromEnv = env[f.env];
    const raw = fromFlag ?? (fromEnv === '' ? undefined : fromEnv) ?? f.default;
    if (raw === undefined) continue;
    const source = fromFlag !== undefined ? f.flag : fromEnv ? f.env : `${f.flag} (default)`;
    const parsed = f.schema.safeParse(raw);
    if (!parsed.success) {
      const reason = parsed.error.issues[0]?.message ?? 'invalid value';
      throw new ConfigError(`${source}: ${reason}, got ${JSON.stringify(raw)}`);
    }
    values[key] = parsed.data;
  }
  const config = values as unknown as WorkerConfig;
  const sourceOf = (key: Key): string =>
    flags[key] !== undefined ? CONFIG_FIELDS[key].flag : CONFIG_FIELDS[key].env;
  const tlsKeys = { cert: 'tlsCert', key: 'tlsKey', ca: 'tlsCa' } as const;
  if (Object.values(tlsKeys).some((key) => config[key] !== undefined)) {
    const missing = Object.values(tlsKeys).find((key) => config[key] === undefined);
    if (missing !== undefined) {
      throw new ConfigError(
        `${CONFIG_FIELDS[missing].flag} / ${CONFIG_FIELDS[missing].env}: required with TLS (--tls-cert, --tls-key and --tls-ca go together)`,
      );
    }
    try {
      workerTls(config);
    } catch (error) {
      if (!(error instanceof TlsFileError)) throw error;
      throw new ConfigError(`${sourceOf(tlsKeys[error.field])}: ${error.message}`);
    }
  }
  if (config.store !== undefined) {
    try {
      parseObjectStoreUrl(config.store, env);
    } catch (error) {
      const source = flags.store !== undefined ? '--store' : 'LETHE_STORE';
      throw new ConfigError(`${source}: ${(error as Error).message}`);
    }
  }
  return config;
}

/** The worker's TLS files, read and checked; undefined when it runs plaintext. */
export function workerTls(config: WorkerConfig): TlsMaterial | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined || config.tlsCa === undefined) {
    return undefined;
  }
  return readTlsMaterial({ cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa });
}

/**
 * A store URL fit for logs: no user info, and of the query only the endpoint (itself without
 * user info) and the region; anything else is replaced by `REDACTED`.
 */
export function redactStoreUrl(url: string): string {
  if (!/^[a-z][a-z0-9+.-]+:\/\//i.test(url)) return url;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '<unparseable store URL>';
  }
  parsed.username = '';
  parsed.password = '';
  for (const [key, value] of [...parsed.searchParams]) {
    if (key === 'endpoint') parsed.searchParams.set(key, redactStoreUrl(value));
    else if (key !== 'region') parsed.searchParams.set(key, 'REDACTED');
  }
  return parsed.toString();
}
