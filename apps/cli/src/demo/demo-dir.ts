import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { isProcessAlive } from '../cluster/cluster-file';
import { CliError } from '../terminal/errors';

/** The file that marks a directory as one `lethe demo` made, and may therefore replace. */
export const DEMO_MARKER = 'lethe-demo.json';

interface Marker {
  pid?: number;
  startedAt?: string;
  finishedAt?: string;
}

function readMarker(path: string): Marker {
  try {
    const parsed = JSON.parse(readFileSync(join(path, DEMO_MARKER), 'utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as Marker) : {};
  } catch {
    return {};
  }
}

/**
 * Empties the demo directory (or creates it) and marks it as the demo's; returns its absolute
 * path. Only a missing or empty directory, or one an earlier demo made (the marker, or the
 * store the in-process demo used to write there), is replaced: anything else is refused, so a
 * mistyped `--dir` never deletes someone's files; so is the directory of a demo still running.
 */
export async function freshDemoDir(dir: string): Promise<string> {
  const path = resolve(dir);
  if (path === dirname(path) || path === homedir() || path === process.cwd()) {
    throw new CliError(`refusing to use ${path} as the demo directory: pick a subdirectory`);
  }
  if (existsSync(path)) {
    const entries = await readdir(path).catch((error: NodeJS.ErrnoException) => {
      throw new CliError(`cannot read the demo directory ${path}: ${error.code ?? error.message}`);
    });
    const ours = entries.includes(DEMO_MARKER) || entries.includes('manifest.json');
    if (entries.length > 0 && !ours) {
      throw new CliError(
        `${path} is not empty and was not made by lethe demo (no ${DEMO_MARKER}): pick another --dir`,
      );
    }
    const marker = readMarker(path);
    if (
      marker.pid !== undefined &&
      marker.pid !== process.pid &&
      !marker.finishedAt &&
      isProcessAlive(marker.pid)
    ) {
      throw new CliError(
        `a demo is already running in ${path} (pid ${marker.pid}): wait for it, or pick another --dir`,
      );
    }
    await rm(path, { recursive: true, force: true });
  }
  await mkdir(path, { recursive: true });
  await writeMarker(path, { pid: process.pid, startedAt: new Date().toISOString() });
  return path;
}

/** Records that this run is over, so the next one replaces the directory without asking. */
export async function finishDemoDir(path: string): Promise<void> {
  const marker = readMarker(path);
  await writeMarker(path, { ...marker, finishedAt: new Date().toISOString() }).catch(
    () => undefined,
  );
}

function writeMarker(path: string, marker: Marker): Promise<void> {
  return writeFile(join(path, DEMO_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
}
