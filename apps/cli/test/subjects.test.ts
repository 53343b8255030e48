import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lethe, writeCifar10 } from './fixtures';

const work = mkdtempSync(join(tmpdir(), 'lethe-cli-subjects-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const data = `cifar10:${writeCifar10(work, 12, 4)}`;
const subjects = join(work, 'subjects.csv');
// Subject s7 owns three training samples; s8 one.
writeFileSync(
  subjects,
  'sample,subject\ncifar10:train:2,s7\ncifar10:train:17,s7\ncifar10:train:30,s7\ncifar10:train:5,s8\n',
);
const small = [
  '--preset',
  'tiny',
  '--experts',
  '2',
  '--top-k',
  '1',
  '--epochs',
  '1',
  '--batch',
  '8',
];
const sisa = ['--mode', 'sisa', '--slices', '2', '--router-fraction', '0.5'];

/** `lethe train` of a tiny model on the generated data with a subject table. */
const trainWith = (table: string, store: string, extra: string[] = []) =>
  lethe(['train', '--data', data, '--store', store, ...small, ...extra, '--subjects', table]);

/** sha256 of every file under a directory: what "nothing changed" means. */
function digest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const path = join(dir, name);
    if (statSync(path).isFile()) {
      out[name] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  }
  return out;
}

describe('data subjects', () => {
  it.each([
    [
      'a duplicate sample',
      'cifar10:train:2,s7\ncifar10:train:2,s9',
      /line 3: sample cifar10:train:2 is listed twice/,
    ],
    [
      'a sample not in the dataset',
      'cifar10:train:99999,s7',
      /line 2: sample cifar10:train:99999 is not in the dataset/,
    ],
    [
      'no subject column',
      'cifar10:train:2',
      /line 1: the header needs a "sample" and a "subject" column/,
    ],
  ])(
    'refuses a subject table with %s, naming the line, before training',
    (_case, rows, message) => {
      const table = join(work, 'bad.csv');
      const header = rows.includes(',') ? 'sample,subject' : 'sample';
      writeFileSync(table, `${header}\n${rows}\n`);
      const store = join(work, 'refused');
      const run = trainWith(table, store);
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toMatch(/engine:/);
    },
  );

  it('lists, forgets and ledgers a subject of a sisa model', () => {
    const store = join(work, 'sisa');
    const train = trainWith(subjects, store, sisa);
    expect(train.stderr).not.toMatch(/lethe: error/);
    expect(train.stderr).toMatch(/erasure ledger: empty/);

    const listed = lethe(['samples', '--store', store, '--subject', 's7', '--json']);
    expect(JSON.parse(listed.stdout)).toEqual(
      ['cifar10:train:17', 'cifar10:train:2', 'cifar10:train:30']
        .sort((a, b) => Number(a.split(':')[2]) - Number(b.split(':')[2]))
        .map((sampleId) => expect.objectContaining({ sampleId, subject: 's7' })),
    );
    const byShard = JSON.parse(
      lethe(['samples', '--store', store, '--shard', '1', '--json']).stdout,
    ) as {
      slice: number;
    }[];
    expect(byShard).toHaveLength(24);
    expect(new Set(byShard.map((s) => s.slice))).toEqual(new Set([0, 1]));
    const byClass = lethe(['samples', '--store', store, '--class', 'disc']);
    expect(byClass.stdout).toMatch(/\n12 samples\n$/);
    expect(lethe(['samples', '--store', store, '--shard', '2']).stderr).toMatch(
      /lethe: error: not found: shard 2 \(the model has 2\)/,
    );

    const before = digest(store);
    const mixed = lethe(['forget', '--store', store, '--subject', 's7', '--class', 'circle']);
    expect(mixed.stderr).toMatch(/lethe: error: invalid argument: give --subject alone/);
    const unknown = lethe([
      'forget',
      '--store',
      store,
      '--subject',
      'nobody',
      '--request-id',
      'r0',
    ]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/lethe: error: not found: subject "nobody"/);
    // A dry run of the subject on the sisa model: its 3 samples' replay plan, nothing changed.
    const dry = lethe(['forget', '--store', store, '--subject', 's7', '--dry-run', '--json']);
    expect(dry.stderr).not.toMatch(/lethe: error/);
    const plan = JSON.parse(dry.stdout) as {
      samples: number;
      replay: { samplesRemoved: number }[];
      estimate: { totalSeconds: number } | null;
    };
    expect(plan.samples).toBe(3);
    expect(plan.replay.reduce((n, r) => n + r.samplesRemoved, 0)).toBe(3);
    expect(plan.estimate!.totalSeconds).toBeGreaterThan(0);
    expect(digest(store)).toEqual(before);

    const args = [
      'forget',
      '--store',
      store,
      '--subject',
      's7',
      '--request-id',
      'erase-s7',
      '--json',
    ];
    const forget = lethe(args);
    expect(forget.stderr).not.toMatch(/lethe: error/);
    const receipt = JSON.parse(forget.stdout) as {
      request: { sampleIds: string[]; subjects: string[] };
    };
    expect(receipt.request.subjects).toEqual(['s7']);
    expect(receipt.request.sampleIds).toHaveLength(3);
    expect(JSON.parse(lethe(args).stdout)).toEqual(receipt);
    const again = lethe([
      'forget',
      '--store',
      store,
      '--subject',
      's7',
      '--request-id',
      'erase-s7-b',
    ]);
    expect(again.stderr).toMatch(/subject s7, erased by request erase-s7, is already forgotten/);
    expect(
      JSON.parse(lethe(['samples', '--store', store, '--subject', 's7', '--json']).stdout),
    ).toEqual([]);

    const ledger = lethe(['ledger', '--store', store, '--json']);
    const document = JSON.parse(ledger.stdout) as {
      events: { requestId: string; subjects: string[] }[];
    };
    expect(document.events).toEqual([
      expect.objectContaining({ requestId: 'erase-s7', subjects: ['s7'] }),
    ]);
    expect(lethe(['ledger', '--store', store]).stdout).toMatch(
      /erase \(exact\)\s+erase-s7\s+subjects s7; 3 samples/,
    );

    // Only an operator's drop, with who and why, takes an erasure back.
    const noReason = lethe(['ledger', 'drop', '--store', store, '--request-id', 'erase-s7']);
    expect(noReason.stderr).toMatch(/lethe: error: .*--reason/);
    const drop = ['ledger', 'drop', '--store', store, '--request-id', 'erase-s7'];
    const dropped = lethe([...drop, '--reason', 'court order reversed', '--by', 'ops']);
    expect(dropped.stdout).toMatch(/dropped erasure erase-s7 \(by ops: court order reversed\)/);
    expect(lethe(['ledger', '--store', store]).stdout).toMatch(
      /erase \(exact\), dropped[\s\S]*drop\s+erase-s7\s+ops: court order reversed/,
    );
    expect(lethe([...drop, '--reason', 'again']).stderr).toMatch(
      /erasure erase-s7 was already dropped/,
    );
  });

  it('forgets a subject and samples of a joint model approximately, with a dry run first', () => {
    const store = join(work, 'joint');
    const train = trainWith(subjects, store);
    expect(train.stderr).not.toMatch(/lethe: error/);
    const before = digest(store);
    const dry = lethe(['forget', '--store', store, '--subject', 's7', '--dry-run', '--json']);
    expect(dry.stderr).not.toMatch(/lethe: error/);
    const preview = JSON.parse(dry.stdout) as {
      plan: { experts: number[]; samples: number };
      estimate: { epochs: number };
    };
    expect(preview.plan.samples).toBe(3);
    expect(preview.plan.experts.length).toBeGreaterThan(0);
    expect(lethe(['forget', '--store', store, '--subject', 's7', '--dry-run']).stdout).toMatch(
      /dry run: forgetting 3 samples[\s\S]*nothing was changed/,
    );
    const unknown = lethe(['forget', '--store', store, '--subject', 'nobody']);
    expect(unknown.stderr).toMatch(/lethe: error: not found: subject "nobody"/);
    const mixed = lethe([
      'forget',
      '--store',
      store,
      '--samples',
      'cifar10:train:1',
      '--loss',
      'distill',
    ]);
    expect(mixed.stderr).toMatch(
      /lethe: error: invalid argument: --loss apply to class forgetting/,
    );
    // --anchor reaches a sample forget (neggrad+'s); another method refuses it.
    const wrongMethod = ['--subject', 's7', '--method', 'finetune', '--anchor', '1'];
    expect(lethe(['forget', '--store', store, '--dry-run', ...wrongMethod]).stderr).toMatch(
      /lethe: error: invalid argument: anchor applies to the neggrad\+ sample method only/,
    );
    const anchoredDry = lethe([
      ...['forget', '--store', store, '--subject', 's7', '--anchor', '0.5', '--dry-run'],
      '--json',
    ]);
    expect(JSON.parse(anchoredDry.stdout)).toMatchObject({ request: { anchor: 0.5 } });
    const notHeld = lethe(['forget', '--store', store, '--samples', 'cifar10:train:99999']);
    expect(notHeld.stderr).toMatch(/lethe: error: not found: sample cifar10:train:99999/);
    expect(digest(store)).toEqual(before);

    const args = ['forget', '--store', store, '--subject', 's7', '--request-id', 'r1', '--json'];
    const forget = lethe(args);
    expect(forget.stderr).not.toMatch(/lethe: error/);
    const receipt = JSON.parse(forget.stdout) as {
      mode: string;
      request: { sampleIds: string[]; subjects: string[]; method: string };
      metrics: { after: { ua: number; ra: number; ta: number; miaEfficacy: number } };
    };
    expect(receipt.mode).toBe('approximate');
    expect(receipt.request.subjects).toEqual(['s7']);
    expect(receipt.request.sampleIds).toEqual([
      'cifar10:train:17',
      'cifar10:train:2',
      'cifar10:train:30',
    ]);
    expect(Object.keys(receipt.metrics.after)).toEqual(
      expect.arrayContaining(['ua', 'ra', 'ta', 'miaEfficacy']),
    );
    expect(JSON.parse(lethe(args).stdout)).toEqual(receipt);
    const again = lethe(['forget', '--store', store, '--subject', 's7', '--request-id', 'r2']);
    expect(again.stderr).toMatch(
      /lethe: error: failed precondition: subject s7, erased by request r1, is already forgotten/,
    );
    const samples = lethe([
      'forget',
      '--store',
      store,
      '--samples',
      'cifar10:train:5',
      '--method',
      'neggrad+',
      '--request-id',
      'r3',
    ]);
    expect(samples.stderr).not.toMatch(/lethe: error/);
    expect(samples.stdout).toMatch(/forgot 1 sample \(neggrad\+, approximate\)/);
    expect(samples.stdout).toMatch(/ascent on a forgotten sample stopped at loss \d\.\d{3}/);
    expect(lethe(['receipts', '--store', store]).stdout).toMatch(/r3 .*1 sample .*neggrad\+/);
    // verify checks exact forgets from the store; an approximate receipt is named as one.
    const verify = lethe(['verify', '--request-id', 'r3', '--store', store]);
    expect(verify.status).toBe(1);
    expect(verify.stderr).toMatch(
      /^lethe: error: receipt r3 is of an approximate samples forget: only an exact \(sisa\) forget can be verified from the store/m,
    );

    // A later training on this store leaves all four samples out.
    const retrained = trainWith(subjects, store);
    expect(retrained.stderr).toMatch(/excluded 4 training samples \(subjects s7\)/);
  });
});
