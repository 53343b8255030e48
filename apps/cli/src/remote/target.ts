import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CLUSTER_FILE, isProcessAlive, readClusterFile } from '../cluster/cluster-file';
import { CliError } from '../terminal/errors';

/** The environment variable naming a coordinator, as `--coordinator` does. */
export const COORDINATOR_ENV = 'LETHE_COORDINATOR';

/** How to reach a coordinator securely: TLS (with a client certificate) and a bearer token. */
export interface Connection {
  /** Sent as `authorization: Bearer <token>` with every call. */
  token?: string;
  /** TLS: the server is verified against `ca` (the system's roots without one). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

export interface CoordinatorTarget {
  address: string;
  /** Where the address came from, for messages: `--coordinator`, `LETHE_COORDINATOR`, a file. */
  source: string;
  /** Plaintext and anonymous when absent. */
  connection?: Connection;
}

/** The connection flags of the remote commands (`withConnectionOptions`). */
export interface ConnectionFlags {
  token?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** Adds --token, --tls, --tls-ca, --tls-cert and --tls-key to a command that may go remote. */
export function withConnectionOptions(command: Command): Command {
  return command
    .option(
      '--token <token>',
      'with a coordinator: bearer token for its API (prefer LETHE_TOKEN: flags show in ps)',
    )
    .option(
      '--tls',
      'with a coordinator: connect with TLS, trusting the system CAs (or LETHE_TLS=1)',
    )
    .option(
      '--tls-ca <file>',
      'with a coordinator: TLS, verifying it with this PEM CA (or LETHE_TLS_CA)',
    )
    .option(
      '--tls-cert <file>',
      'with a coordinator: PEM client certificate, an identity instead of a token (or LETHE_TLS_CERT)',
    )
    .option('--tls-key <file>', 'the private key of --tls-cert (or LETHE_TLS_KEY)');
}

function readPem(file: string, source: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new CliError(
      `cannot read ${source} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

/**
 * The connection from the flags, else LETHE_TOKEN, LETHE_TLS, LETHE_TLS_CA, LETHE_TLS_CERT and
 * LETHE_TLS_KEY (`useEnv` false: the flags only). A CA or a client certificate implies TLS.
 */
export function connectionFrom(
  flags: ConnectionFlags,
  useEnv = true,
  env: NodeJS.ProcessEnv = process.env,
): Connection | undefined {
  const pick = (value: string | undefined, name: string): [string, string] | undefined => {
    if (value !== undefined) return [value, `--${name}`];
    const fromEnv = useEnv ? env[`LETHE_${name.toUpperCase().replace(/-/g, '_')}`] : undefined;
    return fromEnv ? [fromEnv, `LETHE_${name.toUpperCase().replace(/-/g, '_')}`] : undefined;
  };
  const token = pick(flags.token, 'token');
  const ca = pick(flags.tlsCa, 'tls-ca');
  const cert = pick(flags.tlsCert, 'tls-cert');
  const key = pick(flags.tlsKey, 'tls-key');
  const tlsFlag = flags.tls === true || (useEnv && /^(1|true|yes)$/i.test(env['LETHE_TLS'] ?? ''));
  if ((cert === undefined) !== (key === undefined)) {
    throw new CliError(
      `${cert ? cert[1] : key![1]} needs ${cert ? '--tls-key' : '--tls-cert'} too`,
    );
  }
  const tls =
    tlsFlag || ca || cert
      ? {
          ...(ca ? { ca: readPem(ca[0], ca[1]) } : {}),
          ...(cert ? { cert: readPem(cert[0], cert[1]) } : {}),
          ...(key ? { key: readPem(key[0], key[1]) } : {}),
        }
      : undefined;
  if (token?.[0] === '') throw new CliError(`${token[1]} is empty`);
  if (!token && !tls) return undefined;
  return { ...(token ? { token: token[0] } : {}), ...(tls ? { tls } : {}) };
}

/** Checks `HOST:PORT` (`[v6]:PORT` for IPv6) and returns it unchanged. */
export function parseAddress(value: string, source: string): string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[2]) : -1;
  if (!match || port < 1 || port > 65_535) {
    throw new CliError(`invalid ${source} "${value}": expected HOST:PORT, e.g. 127.0.0.1:7070`);
  }
  return value.trim();
}

/**
 * The coordinator named by `--coordinator` or `LETHE_COORDINATOR`, or undefined: then train,
 * forget, eval and receipts run locally, as they always have.
 */
export function explicitCoordinator(
  flag: string | undefined,
  flags: ConnectionFlags = {},
): CoordinatorTarget | undefined {
  let target: CoordinatorTarget | undefined;
  if (flag !== undefined) {
    target = { address: parseAddress(flag, '--coordinator'), source: '--coordinator' };
  } else {
    const env = process.env[COORDINATOR_ENV];
    if (env) target = { address: parseAddress(env, COORDINATOR_ENV), source: COORDINATOR_ENV };
  }
  if (!target) {
    const given = (['token', 'tls', 'tlsCa', 'tlsCert', 'tlsKey'] as const).filter(
      (key) => flags[key] !== undefined,
    );
    if (given.length > 0) {
      const names = given.map((key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
      process.stderr.write(`warning: ${names.join(', ')} only apply with --coordinator\n`);
    }
    return undefined;
  }
  const connection = connectionFrom(flags);
  return connection ? { ...target, connection } : target;
}

/**
 * The coordinator `lethe status` talks to: `--coordinator`, `LETHE_COORDINATOR`, else the cluster
 * that `lethe up` started from this directory (`.lethe/cluster.json`).
 */
export function statusCoordinator(
  flag: string | undefined,
  cwd = process.cwd(),
  flags: ConnectionFlags = {},
): CoordinatorTarget {
  const explicit = explicitCoordinator(flag, flags);
  if (explicit) return explicit;
  const path = resolve(cwd, CLUSTER_FILE);
  const cluster = readClusterFile(path);
  if (!cluster) {
    throw new CliError(
      `no coordinator: pass --coordinator HOST:PORT, set ${COORDINATOR_ENV}, or start one here with npx lethe up`,
    );
  }
  if (!isProcessAlive(cluster.pid)) {
    throw new CliError(
      `no running cluster: ${CLUSTER_FILE} names lethe up process ${cluster.pid}, which has exited (start one with npx lethe up)`,
    );
  }
  // `lethe up` runs plaintext and open: the LETHE_TLS_* / LETHE_TOKEN meant for another
  // coordinator do not apply to it (flags given here still do).
  const connection = connectionFrom(flags, false);
  return {
    address: parseAddress(cluster.coordinator, CLUSTER_FILE),
    source: CLUSTER_FILE,
    ...(connection ? { connection } : {}),
  };
}

/** Warns, on stderr, about local-only options given on the command line in remote mode. */
export function ignoredWithCoordinator(
  command: { getOptionValueSource(key: string): string | undefined },
  keys: string[],
): void {
  for (const key of keys) {
    if (command.getOptionValueSource(key) === 'cli') {
      const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      process.stderr.write(`warning: ${flag} is ignored with a coordinator (it uses its own)\n`);
    }
  }
}
