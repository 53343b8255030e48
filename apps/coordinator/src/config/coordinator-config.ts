import { Command, Option } from 'commander';
import { z } from 'zod';

/** Everything the coordinator reads at start, from flags or LETHE_* environment variables. */
export const coordinatorConfigSchema = z.object({
  host: z.string().min(1),
  /** 0 picks a free port (tests, `lethe up`). */
  port: z.coerce.number().int().min(0).max(65_535),
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
});

export type CoordinatorConfig = z.infer<typeof coordinatorConfigSchema>;

export const COORDINATOR_DEFAULTS: CoordinatorConfig = {
  host: '127.0.0.1',
  port: 7070,
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
  store: 'LETHE_STORE',
  db: 'LETHE_DB',
  heartbeatIntervalMs: 'LETHE_HEARTBEAT_INTERVAL_MS',
  heartbeatTimeoutMs: 'LETHE_HEARTBEAT_TIMEOUT_MS',
  workerDeadlineMs: 'LETHE_WORKER_DEADLINE_MS',
  checkpointEverySteps: 'LETHE_CHECKPOINT_EVERY_STEPS',
  logLevel: 'LETHE_LOG_LEVEL',
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
  flag('store', 'object store: DIR, file:DIR or s3://bucket/prefix?endpoint=URL');
  flag('db', 'SQLite file for jobs and requests');
  flag('heartbeat-interval-ms', 'worker heartbeat interval');
  flag('heartbeat-timeout-ms', 'declare a worker lost after this silence');
  flag('worker-deadline-ms', 'deadline of each call to a worker');
  flag('checkpoint-every-steps', 'expert checkpoints during training');
  flag('log-level', 'pino log level');
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
      `invalid ${key} (--${kebab(key)} / ${ENV[key as keyof CoordinatorConfig]}): ${issue.message}, got ${JSON.stringify(merged[key])}`,
    );
  }
  if (parsed.data.heartbeatTimeoutMs <= parsed.data.heartbeatIntervalMs) {
    throw new ConfigError(
      `invalid heartbeatTimeoutMs: must exceed heartbeatIntervalMs (${parsed.data.heartbeatIntervalMs})`,
    );
  }
  return parsed.data;
}

const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
