import { ConfigError, defineSettings, loadSettings, type SettingsValues } from '@lethe/config';
import { readTlsMaterial, TlsFileError, type TlsMaterial } from '@lethe/rpc';
import { MAX_FORGET_WINDOW_MS } from '@lethe/sisa';
import { Command } from 'commander';
import { z } from 'zod';
import { loadAuthFile } from './auth-file';

export { ConfigError };

const port = z.coerce.number().int().min(0).max(65_535);
const file = z.string().min(1);

/**
 * Everything the coordinator reads at start: defaults < config file (`--config FILE` /
 * `LETHE_CONFIG`, keyed like this object) < LETHE_* environment variables < flags.
 */
export const COORDINATOR_SETTINGS = defineSettings({
  host: {
    schema: z.string().min(1),
    env: 'LETHE_HOST',
    flag: '--host <value>',
    help: 'address to listen on',
    default: '127.0.0.1',
  },
  /** 0 picks a free port (tests, `lethe up`). */
  port: {
    schema: port,
    env: 'LETHE_PORT',
    flag: '--port <value>',
    help: 'port to listen on (0: any free port)',
    default: 7070,
  },
  /** Prometheus metrics at GET /metrics on this port (same host as gRPC); 0 disables them. */
  metricsPort: {
    schema: port,
    env: 'LETHE_METRICS_PORT',
    flag: '--metrics-port <value>',
    help: 'Prometheus metrics (GET /metrics) on this port; 0: disabled',
    default: 0,
  },
  /** Object store URL: a directory, `file:DIR` or `s3://bucket/prefix?endpoint=...`. */
  store: {
    schema: z.string().min(1),
    env: 'LETHE_STORE',
    flag: '--store <value>',
    help: 'object store: DIR, file:DIR or s3://bucket/prefix?endpoint=URL',
    default: '.lethe/store',
  },
  /** SQLite file holding jobs and requests. */
  db: {
    schema: z.string().min(1),
    env: 'LETHE_DB',
    flag: '--db <value>',
    help: 'SQLite file for jobs and requests',
    default: '.lethe/coordinator.sqlite',
  },
  heartbeatIntervalMs: {
    schema: z.coerce.number().int().min(100),
    env: 'LETHE_HEARTBEAT_INTERVAL_MS',
    flag: '--heartbeat-interval-ms <value>',
    help: 'worker heartbeat interval',
    default: 1_000,
  },
  heartbeatTimeoutMs: {
    schema: z.coerce.number().int().min(200),
    env: 'LETHE_HEARTBEAT_TIMEOUT_MS',
    flag: '--heartbeat-timeout-ms <value>',
    help: 'declare a worker lost after this silence',
    default: 5_000,
  },
  /** Deadline of each call to a worker. */
  workerDeadlineMs: {
    schema: z.coerce.number().int().min(100),
    env: 'LETHE_WORKER_DEADLINE_MS',
    flag: '--worker-deadline-ms <value>',
    help: 'deadline of each call to a worker',
    default: 60_000,
  },
  /** Expert checkpoints during training, every this many steps (and at every epoch's end). */
  checkpointEverySteps: {
    schema: z.coerce.number().int().min(1),
    env: 'LETHE_CHECKPOINT_EVERY_STEPS',
    flag: '--checkpoint-every-steps <value>',
    help: 'expert checkpoints during training',
    default: 50,
  },
  /**
   * SIGTERM/SIGINT: how long a stop may take. Calls in flight get most of it to finish (then
   * they are cancelled), the running job is stopped (a forget job runs again at the next start)
   * and the process exits 0 — or 1 if stopping took longer than this.
   */
  shutdownGraceMs: {
    schema: z.coerce.number().int().min(1_000).max(3_600_000),
    env: 'LETHE_SHUTDOWN_GRACE_MS',
    flag: '--shutdown-grace-ms <value>',
    help: 'longest a SIGTERM stop may take (calls in flight drain meanwhile)',
    default: 10_000,
  },
  /**
   * Sisa forget requests (samples, subjects, a class as its samples) queued within this many
   * milliseconds of the oldest waiting one share one replay; each keeps its own job and receipt.
   * 0: a replay starts as soon as the queue is free (requests queued meanwhile still share it).
   */
  forgetWindowMs: {
    schema: z.coerce.number().int().min(0).max(MAX_FORGET_WINDOW_MS),
    env: 'LETHE_FORGET_WINDOW_MS',
    flag: '--forget-window-ms <value>',
    help: `sisa forget requests within this window share one replay (0..${MAX_FORGET_WINDOW_MS}, a day; 0: immediate)`,
    default: 0,
  },
  logLevel: {
    schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    env: 'LETHE_LOG_LEVEL',
    flag: '--log-level <value>',
    help: 'pino log level',
    default: 'info',
  },
  /**
   * PEM certificate and key of the coordinator: its TLS server certificate (public API and
   * Registry) and its client certificate when it calls workers. Unset: plaintext.
   */
  tlsCert: {
    schema: file,
    env: 'LETHE_TLS_CERT',
    flag: '--tls-cert <value>',
    help: 'PEM certificate of the coordinator (TLS; with --tls-key and --tls-ca)',
  },
  tlsKey: {
    schema: file,
    env: 'LETHE_TLS_KEY',
    flag: '--tls-key <value>',
    help: 'PEM private key of --tls-cert',
  },
  /** PEM CA certificates of the cluster: verify workers (both ways) and API client certificates. */
  tlsCa: {
    schema: file,
    env: 'LETHE_TLS_CA',
    flag: '--tls-ca <value>',
    help: 'PEM CA certificates of the cluster (workers and API client certificates)',
  },
  /** JSON file of token hashes and certificate common names with their roles. Unset: open API. */
  authFile: {
    schema: file,
    env: 'LETHE_AUTH_FILE',
    flag: '--auth-file <value>',
    help: 'JSON file of API tokens (sha256) and certificate names with their roles',
  },
});

export type CoordinatorConfig = SettingsValues<typeof COORDINATOR_SETTINGS>;

export const COORDINATOR_DEFAULTS: CoordinatorConfig = {
  host: COORDINATOR_SETTINGS.host.default,
  port: COORDINATOR_SETTINGS.port.default,
  metricsPort: COORDINATOR_SETTINGS.metricsPort.default,
  store: COORDINATOR_SETTINGS.store.default,
  db: COORDINATOR_SETTINGS.db.default,
  heartbeatIntervalMs: COORDINATOR_SETTINGS.heartbeatIntervalMs.default,
  heartbeatTimeoutMs: COORDINATOR_SETTINGS.heartbeatTimeoutMs.default,
  workerDeadlineMs: COORDINATOR_SETTINGS.workerDeadlineMs.default,
  checkpointEverySteps: COORDINATOR_SETTINGS.checkpointEverySteps.default,
  shutdownGraceMs: COORDINATOR_SETTINGS.shutdownGraceMs.default,
  forgetWindowMs: COORDINATOR_SETTINGS.forgetWindowMs.default,
  logLevel: COORDINATOR_SETTINGS.logLevel.default,
};

type Fail = (key: keyof CoordinatorConfig, reason: string) => never;

/**
 * Defaults, then the config file, then environment, then flags; each value validated, then
 * the cross-field and file checks. Throws ConfigError naming the key (commander's
 * CommanderError, exit code 0, after --help).
 */
export function loadCoordinatorConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): CoordinatorConfig {
  const program = new Command()
    .name('lethe-coordinator')
    .description(
      'The Lethe coordinator: public gRPC API, expert placement, training and forgetting.',
    );
  return loadSettings(COORDINATOR_SETTINGS, {
    argv,
    env,
    program,
    check: (config, fail) => {
      if (config.heartbeatTimeoutMs <= config.heartbeatIntervalMs) {
        fail(
          'heartbeatTimeoutMs',
          `must exceed heartbeatIntervalMs (${config.heartbeatIntervalMs})`,
        );
      }
      checkSecurityFiles(config, fail);
    },
  });
}

const TLS_KEYS = { cert: 'tlsCert', key: 'tlsKey', ca: 'tlsCa' } as const;

/**
 * TLS needs the certificate, its key and the cluster CA together, each readable and matching;
 * the auth file must read and parse. Each failure is one ConfigError naming its key (and the
 * file, never its contents).
 */
function checkSecurityFiles(config: CoordinatorConfig, fail: Fail): void {
  const { tlsCert, tlsKey, tlsCa } = config;
  if (tlsCert !== undefined || tlsKey !== undefined || tlsCa !== undefined) {
    for (const key of Object.values(TLS_KEYS)) {
      if (config[key] === undefined) {
        fail(
          key,
          'required with TLS (tlsCert, tlsKey and tlsCa go together: mutual TLS with the workers)',
        );
      }
    }
    try {
      readTlsMaterial({ cert: tlsCert!, key: tlsKey!, ca: tlsCa! });
    } catch (error) {
      if (!(error instanceof TlsFileError)) throw error;
      fail(TLS_KEYS[error.field], error.message);
    }
  }
  if (config.authFile !== undefined) {
    try {
      loadAuthFile(config.authFile);
    } catch (error) {
      fail('authFile', error instanceof Error ? error.message : String(error));
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
