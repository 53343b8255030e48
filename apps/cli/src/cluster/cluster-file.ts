import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CliError } from '../terminal/errors';

/** Where `lethe up` says which cluster it runs, relative to the directory it was started in. */
export const CLUSTER_FILE = join('.lethe', 'cluster.json');

/** The contents of `.lethe/cluster.json`. */
export interface ClusterFile {
  /** The coordinator's address, host:port, as clients should dial it. */
  coordinator: string;
  /** Process id of `lethe up`. */
  pid: number;
  workers: { name: string; pid: number; address: string }[];
  /** Absolute path of the local store directory. */
  store: string;
  /** Absolute path of the directory holding each process's log. */
  logs: string;
  startedAt: string;
  /** The dataset given to `lethe up --data`, if any. */
  data?: string;
}

/** Writes the cluster file atomically (temporary file, then rename). */
export async function writeClusterFile(path: string, info: ClusterFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(info, null, 2)}\n`);
  renameSync(temporary, path);
}

/** Reads a cluster file; undefined when there is none, a one-line error when it is malformed. */
export function readClusterFile(path: string): ClusterFile | undefined {
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CliError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  const file = parsed as Partial<ClusterFile> | null;
  if (
    typeof file !== 'object' ||
    file === null ||
    typeof file.coordinator !== 'string' ||
    typeof file.pid !== 'number' ||
    !Array.isArray(file.workers)
  ) {
    throw new CliError(`${path} does not describe a cluster (coordinator, pid, workers expected)`);
  }
  return file as ClusterFile;
}

/** Removes the cluster file if it still describes the cluster of process `pid`. */
export function removeClusterFile(path: string, pid: number): void {
  try {
    if (readClusterFile(path)?.pid === pid) rmSync(path, { force: true });
  } catch {
    // A malformed file is not ours to remove.
  }
}

/** Whether a process with this id exists (signal 0 checks without sending anything). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
