import { ConfigError, defineSettings, loadSettings, type SettingsValues } from '@lethe/config';
import { Command } from 'commander';
import { readTlsMaterial, TlsFileError, type TlsMaterial } from '@lethe/rpc';
import { parseObjectStoreUrl } from '@lethe/store';
import { z } from 'zod';

/**
 * How a worker process runs: flags, else environment variables, else the config file
 * (`--config FILE` / `LETHE_CONFIG`, keyed like this interface), else defaults.
 */
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

export { ConfigError };

const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$/;
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

/** Digits from a flag or variable, or a number from the config file. */
const integer = (min: number, max: number) =>
  z.preprocess(
    (value) => (typeof value === 'number' ? String(value) : value),
    z
      .string()
      .regex(/^\d+$/, `expected an integer ${min}..${max}`)
      .transform(Number)
      .refine((n) => n >= min && n <= max, `expected an integer ${min}..${max}`),
  );

const hostPort = z
  .string()
  .regex(HOST_PORT, 'expected host:port')
  .refine((s) => {
    const port = Number(HOST_PORT.exec(s)?.[2]);
    return port >= 1 && port <= 65_535;
  }, 'expected host:port with a port 1..65535');

/** Every setting: its flag, its environment variable and how its value is checked. */
export const CONFIG_FIELDS = defineSettings({
  host: {
    flag: '--host <value>',
    env: 'LETHE_WORKER_HOST',
    help: 'interface to listen on',
    schema: z.string().regex(HOST, 'expected a host name or IP address'),
    default: '127.0.0.1',
  },
  port: {
    flag: '--port <value>',
    env: 'LETHE_WORKER_PORT',
    help: 'port to listen on; 0 picks a free one',
    schema: integer(0, 65_535),
    default: 0,
  },
  metricsPort: {
    flag: '--metrics-port <value>',
    env: 'LETHE_METRICS_PORT',
    help: 'Prometheus metrics (GET /metrics) on this port, same host; 0 disables them',
    schema: integer(0, 65_535),
    default: 0,
  },
  advertise: {
    flag: '--advertise <value>',
    env: 'LETHE_WORKER_ADVERTISE',
    help: 'host:port the coordinator reaches this worker at (default host:actualPort)',
    schema: hostPort,
  },
  coordinator: {
    flag: '--coordinator <value>',
    env: 'LETHE_COORDINATOR',
    help: "the coordinator's host:port; unset runs without one",
    schema: hostPort,
  },
  store: {
    flag: '--store <value>',
    env: 'LETHE_STORE',
    help: 'object store for checkpoints: DIR, file:DIR or s3://bucket/prefix?endpoint=URL',
    schema: z.string().min(1, 'expected a path or URL'),
  },
  name: {
    flag: '--name <value>',
    env: 'LETHE_WORKER_NAME',
    help: 'stable name shown in listings, e.g. the pod name',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'expected 1-63 of A-Z, a-z, 0-9, _ . -'),
  },
  maxExperts: {
    flag: '--max-experts <value>',
    env: 'LETHE_MAX_EXPERTS',
    help: 'experts held at once',
    schema: integer(1, 1024),
    default: 8,
  },
  graceMs: {
    flag: '--grace-ms <value>',
    env: 'LETHE_WORKER_GRACE_MS',
    help: 'on SIGTERM, ms in-flight calls may take before they are cancelled',
    schema: integer(0, 3_600_000),
    default: 10_000,
  },
  tlsCert: {
    flag: '--tls-cert <value>',
    env: 'LETHE_TLS_CERT',
    help: 'PEM certificate of this worker, server and client side (mutual TLS; with --tls-key and --tls-ca)',
    schema: z.string().min(1, 'expected a file'),
  },
  tlsKey: {
    flag: '--tls-key <value>',
    env: 'LETHE_TLS_KEY',
    help: 'PEM private key of --tls-cert',
    schema: z.string().min(1, 'expected a file'),
  },
  tlsCa: {
    flag: '--tls-ca <value>',
    env: 'LETHE_TLS_CA',
    help: 'PEM CA certificates of the cluster: callers must present a certificate it signed',
    schema: z.string().min(1, 'expected a file'),
  },
});

// The loader's type of the values must be the WorkerConfig interface, both ways.
type Loaded = SettingsValues<typeof CONFIG_FIELDS>;
type SettingsMatchWorkerConfig = [Loaded, WorkerConfig] extends [WorkerConfig, Loaded]
  ? true
  : never;
const settingsMatchWorkerConfig: SettingsMatchWorkerConfig = true;
void settingsMatchWorkerConfig;

/** The commander program for the worker's name, description and version. */
export function workerProgram(version: string): Command {
  return new Command()
    .name('lethe-worker')
    .description(
      'Lethe worker: hosts experts and trains them for the coordinator (gRPC Worker service).',
    )
    .version(version);
}

/**
 * Reads the configuration from command-line arguments (without `node main.js`), the
 * environment and the config file: flag > environment variable > file > default. Throws
 * ConfigError naming the key of the first bad value (and for unknown flags), commander's
 * CommanderError (exit code 0) after --help and --version.
 */
export function parseWorkerConfig(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  version = '0.0.0',
): WorkerConfig {
  return loadSettings(CONFIG_FIELDS, {
    argv: args,
    env,
    program: workerProgram(version),
    check: (config, fail) => {
      const tlsKeys = { cert: 'tlsCert', key: 'tlsKey', ca: 'tlsCa' } as const;
      if (Object.values(tlsKeys).some((key) => config[key] !== undefined)) {
        const missing = Object.values(tlsKeys).find((key) => config[key] === undefined);
        if (missing !== undefined) {
          fail(missing, 'required with TLS (--tls-cert, --tls-key and --tls-ca go together)');
        }
        try {
          workerTls(config);
        } catch (error) {
          if (!(error instanceof TlsFileError)) throw error;
          fail(tlsKeys[error.field], error.message);
        }
      }
      if (config.store !== undefined) {
        try {
          parseObjectStoreUrl(config.store, env);
        } catch (error) {
          fail('store', (error as Error).message);
        }
      }
    },
  });
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
