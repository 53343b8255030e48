import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDirStore, ManifestStore } from '@lethe/store';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { recoverStore } from '../src/model/store-recovery';

const dir = mkdtempSync(join(tmpdir(), 'lethe-store-recovery-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A logger whose lines are kept, as parsed JSON. */
function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { log, lines };
}

describe('store recovery at start', () => {
  it('rebuilds a damaged manifest pointer from the newest revision and removes stray temp files', async () => {
    const root = join(dir, 'store');
    const store = new LocalDirStore(root);
    const manifests = new ManifestStore(store);
    await manifests.update((m) => {
      m.attributes['training'] = { mode: 'joint' };
    });
    await manifests.update((m) => {
      m.attributes['forgotten'] = [{ classIndex: 1, requestId: 'r-1' }];
    });
    writeFileSync(join(root, 'manifest.json'), '{"schema":1,"revis');
    // A writer killed mid-put: its process is gone, its temp file is not.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(join(root, 'manifests', `.000000000003.json.${dead}.0123456789ab.tmp`), '{');

    const { log, lines } = capture();
    await recoverStore(new LocalDirStore(root), log);

    expect(readdirSync(join(root, 'manifests')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect((await manifests.read())?.revision).toBe(2);
    expect(await manifests.repair()).toBeUndefined();
    expect(lines.map((l) => l['msg'])).toEqual([
      'stray temp files removed',
      'manifest pointer was damaged: rebuilt from revision 2',
    ]);
  });

  it('says nothing when the store is sound', async () => {
    const root = join(dir, 'sound');
    await new ManifestStore(new LocalDirStore(root)).update(() => undefined);
    const { log, lines } = capture();
    await recoverStore(new LocalDirStore(root), log);
    expect(lines).toEqual([]);
  });
});
