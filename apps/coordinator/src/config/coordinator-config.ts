import { readTlsMaterial, TlsFileError, type TlsMaterial } from '@lethe/rpc';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { loadAuthFile } from '../security/auth-file';

/** Everything the coordinator reads at start, from flags or LETHE_* environment variables. */
export const coordinatorConfigSchema = z.object({
  host: z.string().min(1),
  /** 0 picks a free port (tests, `lethe up`). */
  port: z.coerce.number().int().min(0).max(65_535),
  /** Prometheus metrics at GET /metrics on this port (same host as gRPC); 0 disables them. */
  metricsPort: z.coerce.number().int().min(0).max(65_535),
  /** Object store URL: a directory, `file:DIR` or `s3://bucket/prefix?endpoint=...`. */
  store: z.string().min(1),
  /** SQLite file holding jobs and requests. */
  db: z.string().min(1),
  heartbeatIntervalMs: z.coerce.number().int().min(100),
  heartbeatTimeoutMs: z.coerce.number().int().min(200),
  /** Deadline of each call to a worker. */
  workerDeadlineMs: z.coerce.number().int().min(100),
  /** Expert checkpoints during training, every this many steps (and at every epoch's end). */
  checkpointEverySteps: z.coerce.number().int().min(1),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  /**
   * PEM certificate and key of the coordinator: its TLS server certificate (public API and
   * Registry) and its client certificate when it calls workers. Unset: plaintext.
   */
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** PEM CA certificates of the cluster: verify workers (both ways) and API client certificates. */
  tlsCa: z.string().min(1).optional(),
  /** JSON file of token hashes and certificate common names with their roles. Unset: open API. */
  authFile: z.string().min(1).optional(),
});

export type CoordinatorConfig = z.infer<typeof coordinatorConfigSchema>;

export const COORDINATOR_DEFAULTS: CoordinatorConfig = {
  host: '127.0.0.1',
  port: 7070,
  metricsPort: 0,
  store: '.lethe/store',
  db: '.lethe/coordinator.sqlite',
  heartbeatIntervalMs: 1_000,
  heartbeatTimeoutMs: 5_000,
  workerDeadlineMs: 60_000,
  checkpointEverySteps: 50,
  logLevel: 'info',
};

const ENV: Record<keyof CoordinatorConfig, string> = {
  host: 'LETHE_HOST',
  port: 'LETHE_PORT',
  metricsPort: 'LETHE_METRICS_PORT',
  store: 'LETHE_STORE',
  db: 'LETHE_DB',
  heartbeatIntervalMs: 'LETHE_HEARTBEAT_INTERVAL_MS',
  heartbeatTimeoutMs: 'LETHE_HEARTBEAT_TIMEOUT_MS',
  workerDeadlineMs: 'LETHE_WORKER_DEADLINE_MS',
  checkpointEverySteps: 'LETHE_CHECKPOINT_EVERY_STEPS',
  logLevel: 'LETHE_LOG_LEVEL',
  tlsCert: 'LETHE_TLS_CERT',
  tlsKey: 'LETHE_TLS_KEY',
  tlsCa: 'LETHE_TLS_CA',
  authFile: 'LETHE_AUTH_FILE',
};

/** A configuration value that does not validate; the message names the key. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Defaults, then environment, then flags; validated as a whole. */
export function loadCoordinatorConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): CoordinatorConfig {
  const command = new Command()
    .name('lethe-coordinator')
    .description(
      'The Lethe coordinator: public gRPC API, expert placement, training and forgetting.',
    )
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  // commander camel-cases `--heartbeat-interval-ms` to the schema's `heartbeatIntervalMs`.
  const flag = (name: string, help: string): void => {
    command.addOption(new Option(`--${name} <value>`, help));
  };
  flag('host', 'address to listen on');
  flag('port', 'port to listen on (0: any free port)');
  flag('metrics-port', 'Prometheus metrics (GET /metrics) on this port; 0: disabled');
  flag('store', 'object store: DIR, file:DIR or s3://bucket/prefix?endpoint=URL');
  flag('db', 'SQLite file for jobs and requests');
  flag('heartbeat-interval-ms', 'worker heartbeat interval');
  flag('heartbeat-timeout-ms', 'declare a worker lost after this silence');
  flag('worker-deadline-ms', 'deadline of each call to a worker');
  flag('checkpoint-every-steps', 'expert checkpoints during training');
  flag('log-level', 'pino log level');
  flag('tls-cert', 'PEM certificate of the coordinator (TLS; with --tls-key and --tls-ca)');
  flag('tls-key', 'PEM private key of --tls-cert');
  flag('tls-ca', 'PEM CA certificates of the cluster (workers and API client certificates)');
  flag('auth-file', 'JSON file of API tokens (sha256) and certificate names with their roles');
  try {
    command.parse([...argv], { from: 'user' });
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
  const flags = command.opts<Partial<Record<keyof CoordinatorConfig, string>>>();
  const merged: Record<string, unknown> = { ...COORDINATOR_DEFAULTS };
  for (const key of Object.keys(ENV) as (keyof CoordinatorConfig)[]) {
    const fromEnv = env[ENV[key]];
    if (fromEnv !== undefined && fromEnv !== '') merged[key] = fromEnv;
    if (flags[key] !== undefined) merged[key] = flags[key];
  }
  const parsed = coordinatorConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0]);
    throw new ConfigError(
      `${invalid(key as keyof CoordinatorConfig)}: ${issue.message}, got ${JSON.stringify(merged[key])}`,
    );
  }
  if (parsed.data.heartbeatTimeoutMs <= parsed.data.heartbeatIntervalMs) {
    throw new ConfigError(
      `invalid heartbeatTimeoutMs: must exceed heartbeatIntervalMs (${parsed.data.heartbeatIntervalMs})`,
    );
  }
  checkSecurityFiles(parsed.data);
  return parsed.data;
}

const invalid = (key: keyof CoordinatorConfig): string =>
  `invalid ${key} (--${kebab(key)} / ${ENV[key]})`;

const TLS_KEYS = { cert: 'tlsCert', key: 'tlsKey', ca: 'tlsCa' } as const;

/**
 * TLS needs the certificate, its key and the cluster CA together, each readable and matching;
 * the auth file must read and parse. Each failure is one ConfigError naming its key (and the
 * file, never its contents).
 */
function checkSecurityFiles(config: CoordinatorConfig): void {
  const { tlsCert, tlsKey, tlsCa } = config;
  if (tlsCert !== undefined || tlsKey !== undefined || tlsCa !== undefined) {
    for (const key of Object.values(TLS_KEYS)) {
      if (config[key] === undefined) {
        throw new ConfigError(
          `${invalid(key)}: required with TLS (tlsCert, tlsKey and tlsCa go together: mutual TLS with the workers)`,
        );
      }
    }
    try {
      readTlsMaterial({ cert: tlsCert!, key: tlsKey!, ca: tlsCa! });
    } catch (error) {
      if (!(error instanceof TlsFileError)) throw error;
      throw new ConfigError(`${invalid(TLS_KEYS[error.field])}: ${error.message}`);
    }
  }
  if (config.authFile !== undefined) {
    try {
      loadAuthFile(config.authFile);
    } catch (error) {
      throw new ConfigError(
        `${invalid('authFile')}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
}

/** The coordinator's TLS files, read; undefined when it runs plaintext. */
export function coordinatorTls(config: CoordinatorConfig): TlsMaterial | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined || config.tlsCa === undefined) {
    return undefined;
  }
  return readTlsMaterial({ cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa });
}

const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
