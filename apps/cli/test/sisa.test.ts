import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readModelCard } from '@lethe/model';
import { LocalDirStore } from '@lethe/store';
import { lethe, writeCifar10 } from './fixtures';

const work = mkdtempSync(join(tmpdir(), 'lethe-cli-sisa-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Every file under the store with its SHA-256: what "nothing changed" compares. */
function storeHashes(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .map((f) => `${f} ${createHash('sha256').update(readFileSync(f)).digest('hex')}`)
    .sort();
}

describe('lethe train --mode sisa / forget --samples / verify', () => {
  const data = `cifar10:${writeCifar10(work, 12, 4)}`;
  const store = join(work, 'store');
  /** `lethe train --mode sisa` of the tiny preset, one epoch per slice, the router on half. */
  const trainSisa = (dir: string, args: string[]) =>
    lethe([
      'train',
      '--mode',
      'sisa',
      '--data',
      data,
      '--store',
      dir,
      '--preset',
      'tiny',
      '--epochs',
      '1',
      '--router-fraction',
      '0.5',
      ...args,
    ]);

  it('mixes every shard model per image unless --top-k says otherwise', async () => {
    const dir = join(work, 'store-default-k');
    const train = (...extra: string[]) =>
      trainSisa(dir, ['--experts', '3', '--slices', '1', '--batch', '8', ...extra]);
    const tooMany = train('--top-k', '4');
    expect(tooMany.status).not.toBe(0);
    expect(tooMany.stderr).toMatch(/--top-k \(4\) cannot exceed --experts \(3\)/);
    const run = train();
    expect(run.stderr).not.toMatch(/lethe: error/);
    expect(run.status).toBe(0);
    expect((await readModelCard(new LocalDirStore(dir)))?.config.topK).toBe(3);
    // With every expert on every image there is no routing health to show.
    const evaluated = lethe(['eval', '--store', dir, '--data', data]);
    expect(evaluated.status).toBe(0);
    expect(evaluated.stdout).toMatch(/^accuracy [\d.]+% on 16 images/);
    expect(evaluated.stdout).toMatch(/every image goes to all 3 experts, so there is no routing/);
    expect(evaluated.stdout).not.toMatch(/collateral|routing health/);
  });

  it('trains shard by shard, forgets samples exactly, and verifies it from the store', () => {
    const train = trainSisa(store, [
      '--experts',
      '2',
      '--top-k',
      '1',
      '--slices',
      '2',
      '--batch',
      '8',
    ]);
    expect(train.stderr).not.toMatch(/lethe: error/);
    expect(train.status).toBe(0);
    expect(train.stdout).toMatch(/sisa: 2 shards × 2 slices on 48 images/);

    // A dry run plans the replay (shards, slices, seconds at the stored rate) and changes nothing.
    const before = storeHashes(store);
    const dry = (args: string[]) =>
      lethe(['forget', '--store', store, '--dry-run', '--request-id', 'erase-1', ...args]);
    const planned = dry(['--samples', 'cifar10:train:3,cifar10:train:40']);
    expect(planned.stderr).not.toMatch(/lethe: error/);
    expect(planned.stdout).toMatch(
      /dry run: forgetting 2 samples exactly .* would replay \d of 2 shards/,
    );
    expect(planned.stdout).toMatch(/estimate: about \d+ s .* measured by the last training/);
    expect(planned.stdout).toMatch(/nothing was changed/);
    const plan = JSON.parse(
      dry(['--samples', 'cifar10:train:3,cifar10:train:40', '--json']).stdout,
    ) as { replay: { shard: number; slicesReplayed: number[] }[] };
    expect(dry(['--samples', 'cifar10:train:999']).stderr).toMatch(
      /^lethe: error: not found: .*not in the model's training set/m,
    );
    expect(storeHashes(store)).toEqual(before);

    const forget = lethe([
      'forget',
      '--store',
      store,
      '--samples',
      'cifar10:train:3,cifar10:train:40',
      '--request-id',
      'erase-1',
      '--json',
    ]);
    expect(forget.stderr).not.toMatch(/lethe: error/);
    expect(forget.status).toBe(0);
    const receipt = JSON.parse(forget.stdout) as {
      mode: string;
      sisa: { shards: { slicesReplayed: number[] }[] };
      checkpointsDeleted: number;
    };
    expect(receipt.mode).toBe('exact');
    expect(receipt.sisa.shards.length).toBeGreaterThan(0);
    // The replay did what the dry run planned.
    expect(receipt.sisa.shards.map((s) => s.slicesReplayed)).toEqual(
      plan.replay.map((r) => r.slicesReplayed),
    );
    expect(receipt.checkpointsDeleted).toBeGreaterThan(0);

    const verify = lethe(['verify', '--request-id', 'erase-1', '--store', store]);
    expect(verify.status).toBe(0);
    expect(verify.stdout).toMatch(/ok: no checkpoint holds a forgotten sample/);

    const again = lethe([
      'forget',
      '--store',
      store,
      '--samples',
      'cifar10:train:3',
      '--request-id',
      'erase-2',
    ]);
    expect(again.status).toBe(1);
    expect(again.stderr.match(/lethe: error/g)).toHaveLength(1);
    expect(again.stderr).toMatch(/^lethe: error: .*already forgotten$/m);

    // A whole class on a sisa model: exactly, as its 12 training samples.
    const byClass = lethe([
      'forget',
      '--store',
      store,
      '--class',
      'disc',
      '--request-id',
      'erase-class',
      '--json',
    ]);
    expect(byClass.status).toBe(0);
    expect(
      (JSON.parse(byClass.stdout) as { request: { sampleIds: string[] } }).request.sampleIds,
    ).toHaveLength(12);

    const listing = lethe(['receipts', '--store', store]);
    expect(listing.status).toBe(0);
    expect(listing.stdout).toMatch(/erase-1 .* 2 samples .* sisa-replay \(exact\)/);

    const unknown = lethe(['verify', '--request-id', 'nope', '--store', store]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/no receipt nope/);
  });
});
