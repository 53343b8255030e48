import { resolve } from 'node:path';
import { CLUSTER_FILE, isProcessAlive, readClusterFile } from '../cluster/cluster-file';
import { CliError } from '../terminal/errors';

/** The environment variable naming a coordinator, as `--coordinator` does. */
export const COORDINATOR_ENV = 'LETHE_COORDINATOR';

export interface CoordinatorTarget {
  address: string;
  /** Where the address came from, for messages: `--coordinator`, `LETHE_COORDINATOR`, a file. */
  source: string;
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
export function explicitCoordinator(flag: string | undefined): CoordinatorTarget | undefined {
  if (flag !== undefined)
    return { address: parseAddress(flag, '--coordinator'), source: '--coordinator' };
  const env = process.env[COORDINATOR_ENV];
  if (env) return { address: parseAddress(env, COORDINATOR_ENV), source: COORDINATOR_ENV };
  return undefined;
}

/**
 * The coordinator `lethe status` talks to: `--coordinator`, `LETHE_COORDINATOR`, else the cluster
 * that `lethe up` started from this directory (`.lethe/cluster.json`).
 */
export function statusCoordinator(
  flag: string | undefined,
  cwd = process.cwd(),
): CoordinatorTarget {
  const explicit = explicitCoordinator(flag);
  if (explicit) return explicit;
  const path = resolve(cwd, CLUSTER_FILE);
  const cluster = readClusterFile(path);
  if (!cluster) {
    throw new CliError(
      `no coordinator: pass --coordinator HOST:PORT, set ${COORDINATOR_ENV}, or start one here with lethe up`,
    );
  }
  if (!isProcessAlive(cluster.pid)) {
    throw new CliError(
      `no running cluster: ${CLUSTER_FILE} names lethe up process ${cluster.pid}, which has exited (start one with lethe up)`,
    );
  }
  return { address: parseAddress(cluster.coordinator, CLUSTER_FILE), source: CLUSTER_FILE };
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
