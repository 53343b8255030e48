import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getVerified, LocalDirStore, ManifestStore, sha256Hex, verifyRef } from './index.js';

const STORE_DIR = path.resolve(__dirname, '..');
const WRITER = path.join(STORE_DIR, 'test', 'crash-writer.ts');
const KILLS = 10;
const MAX_RUN_MS = 500;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'lethe-crash-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Run {
  /** Highest revision the writer reported as published before it died. */
  acknowledged: number;
}

/** Starts the writer, lets it run for a random while once it is ready, then SIGKILLs it. */
async function runAndKill(runMs: number): Promise<Run> {
  // `--import tsx` loads TypeScript in this process; the tsx CLI would put the writer in a
  // grandchild that SIGKILL would not reach.
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, root], {
    cwd: STORE_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );

  let acknowledged = 0;
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const lines = createInterface({ input: child.stdout });
  const drained = new Promise<void>((resolve) => lines.on('close', resolve));
  lines.on('line', (line) => {
    if (line === 'ready') ready();
    const match = /^published (\d+)$/.exec(line);
    if (match) acknowledged = Math.max(acknowledged, Number(match[1]));
  });

  await Promise.race([isReady, exited]);
  await new Promise((resolve) => setTimeout(resolve, runMs));
  child.kill('SIGKILL');
  const signal = await exited;
  await drained;
  // Anything but our SIGKILL means the writer failed by itself, which is a bug to report.
  expect(signal, `writer exited on its own:\n${stderr}`).toBe('SIGKILL');
  return { acknowledged };
}

async function findTempFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.tmp')) found.push(entry.name);
  }
  return found;
}

it(`keeps manifests and objects whole across ${KILLS} kill -9s`, async () => {
  let previous = 0;
  let acknowledgedTotal = 0;
  let sweptTotal = 0;
  for (let kill = 0; kill < KILLS; kill++) {
    const { acknowledged } = await runAndKill(randomInt(0, MAX_RUN_MS));
    acknowledgedTotal += acknowledged > previous ? acknowledged - previous : 0;

    const store = new LocalDirStore(root);
    const manifests = new ManifestStore(store);
    const manifest = await manifests.read();
    const revision = manifest?.revision ?? 0;
    expect(revision, 'revision went backwards').toBeGreaterThanOrEqual(previous);
    expect(revision, 'an acknowledged revision was lost').toBeGreaterThanOrEqual(acknowledged);
    for (const ref of Object.values(manifest?.objects ?? {})) {
      await verifyRef(store, ref);
      await getVerified(store, ref);
    }
    expect((await manifests.history()).map((h) => h.revision)).toEqual(
      Array.from({ length: revision }, (_, i) => i + 1),
    );

    const scratch = await store.head('scratch/latest');
    if (scratch !== undefined) {
      const data = await store.get('scratch/latest');
      expect(sha256Hex(data)).toBe(scratch.sha256);
      expect(data.byteLength).toBe(scratch.size);
    }
    for (const info of await store.list('objects/')) {
      // Content-addressed objects that made it to their final name are complete by definition.
      expect(info.key).toBe(`objects/${info.sha256}`);
    }

    sweptTotal += (await store.sweepTemp({ olderThanMs: 0 })).length;
    expect(await findTempFiles(root)).toEqual([]);
    previous = revision;
  }
  // Guard against a vacuous pass: the writer must actually have published between kills.
  expect(acknowledgedTotal).toBeGreaterThan(0);
  expect(previous).toBeGreaterThanOrEqual(acknowledgedTotal);
  console.log(`crash test: revision ${previous}, ${sweptTotal} temp files swept`);
});
