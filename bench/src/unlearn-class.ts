import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import type { RoutingHealth } from '@lethe/metrics';
import {
  type ForgetMethod,
  type ForgetMetrics,
  type ForgetPreview,
  type ForgetReceipt,
  isClassReceipt,
  parseReceipt,
  receiptKind,
} from '@lethe/unlearning';
import { defaultEpochs } from '@lethe/sisa';
import { machine, today, writeSection } from './benchmarks-md';
import { lethe, TaskQueue } from './lethe-cli';

type Method = ForgetMethod;
type Receipt = ForgetReceipt;

const program = new Command()
  .option('--data <dir>', 'CIFAR-10 binary directory (required unless --render-from)')
  .option('--classes <list>', 'classes to forget', 'airplane,cat,truck')
  .option('--seeds <list>', 'seeds (each trains its own model)', '0,1,2')
  .option(
    '--methods <list>',
    'methods, targeted first (it measures the "before" the others reuse)',
    'targeted,retrain,mask',
  )
  .option('--experts <E>', 'experts', '8')
  .option('--preset <name>', 'preset', 'small')
  // What `lethe train` uses: the bench measures what a user gets.
  .option(
    '--epochs <N>',
    'training epochs (and the retrain oracle)',
    String(defaultEpochs('joint')),
  )
  .option('--limit <N>', 'train on N samples (same subset for the oracle)')
  .option(
    '--then <class>',
    'after the first class, forget this one too on the same model (two forgets in a row); "" for none',
    'bird',
  )
  .option(
    '--baseline',
    'also train each seed with the balance loss alone (--specialize 0), for the accuracy target',
    false,
  )
  .option('--parallel <N>', 'lethe processes at once (one per core at most)', '1')
  .option('--results <file>', 'also write every receipt to this JSON file')
  .option('--render-from <file>', 'do not run: rewrite the section from a --results file')
  .option('--section <name>', 'BENCHMARKS.md section to (re)write', 'unlearn-class')
  .parse();
const flags = program.opts<Record<string, string | boolean | undefined>>();
const flag = (name: string): string | undefined => flags[name] as string | undefined;
interface Run {
  seed: string;
  cls: string;
  method: Method;
  receipt: Receipt;
  /** Targeted runs: what `--dry-run` estimated before the forget ran. */
  preview?: ForgetPreview;
}

/** What `lethe train --json` reports that the benchmark keeps. */
interface Trained {
  seed: string;
  /** 'specialized' is the default recipe; 'balance-only' has --specialize 0. */
  kind: 'specialized' | 'balance-only';
  seconds: number;
  testAccuracy: number;
  health: RoutingHealth | undefined;
}

/** Two targeted forgets in a row on one model: the first class, then `--then`. */
interface Sequence {
  seed: string;
  first: Receipt;
  second: Receipt;
}

interface Results {
  /** The command that ran the benchmark. */
  command: string;
  wallMinutes: number;
  runs: Run[];
  trained: Trained[];
  sequences: Sequence[];
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]): number => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
const fmt = (xs: number[]): string =>
  xs.length === 0 ? '—' : `${mean(xs).toFixed(2)} ± ${std(xs).toFixed(2)}`;

/** The columns of the method table: one number per run each. */
const COLUMNS: [string, (m: ForgetMetrics) => number][] = [
  ['UA', (m) => m.ua],
  ['RA', (m) => m.ra],
  ['TA', (m) => m.ta],
  ['forgotten-class test acc (unmasked)', (m) => m.unmasked.forgottenClassTestAccuracy],
  ['MIA-Efficacy (unmasked)', (m) => m.unmasked.miaEfficacy],
];

/** Seconds of a forget end to end: plan, measurement and retraining. */
const endToEnd = (r: Receipt): number => r.timings.totalSeconds;

/** The issue's targets for one targeted run, against the oracle of the same model and class. */
function targetChecks(run: Run, oracle: Run | undefined): [string, boolean | undefined][] {
  const m = run.receipt.metrics.after;
  const o = oracle?.receipt.metrics.after;
  const near = (a: number, b: number | undefined, d: number): boolean | undefined =>
    b === undefined ? undefined : Math.abs(a - b) <= d;
  const oracleSeconds = oracle?.receipt.timings.forgetSeconds;
  const ratio = (seconds: number): number | undefined =>
    oracleSeconds === undefined ? undefined : oracleSeconds / seconds;
  const atLeast = (x: number | undefined, bound: number): boolean | undefined =>
    x === undefined ? undefined : x >= bound;
  return [
    ['forgotten-class test acc (unmasked) ≤ 0.5%', m.unmasked.forgottenClassTestAccuracy <= 0.5],
    ['RA within 1 pt of retrain', near(m.ra, o?.ra, 1)],
    ['TA within 1 pt of retrain', near(m.ta, o?.ta, 1)],
    [
      'MIA-Efficacy (unmasked) within 5 pts of retrain',
      near(m.unmasked.miaEfficacy, o?.unmasked.miaEfficacy, 5),
    ],
    [
      '≥ 20× faster than retrain (retraining part)',
      atLeast(ratio(run.receipt.timings.forgetSeconds), 20),
    ],
    ['≥ 10× faster than retrain (end to end)', atLeast(ratio(endToEnd(run.receipt)), 10)],
  ];
}

async function runAll(): Promise<Results> {
  if (!flag('data')) throw new Error('--data is required (or --render-from)');
  const dataDir = resolve(flag('data')!);
  if (!existsSync(dataDir)) throw new Error(`no such directory: ${flag('data')}`);
  const data = `cifar10:${dataDir}`;
  const methods = flag('methods')!.split(',') as Method[];
  const seeds = flag('seeds')!.split(',');
  const classes = flag('classes')!.split(',');
  const then = flag('then');
  const work = mkdtempSync(join(tmpdir(), 'lethe-bench-unlearn-'));
  const runs: Run[] = [];
  const trained: Trained[] = [];
  const sequences: Sequence[] = [];
  const started = performance.now();
  const queue = new TaskQueue(Math.max(1, Number(flag('parallel'))));

  // Only what a user would type: every forget recipe is the library's default.
  const forgetJson = async <T>(store: string, seed: string, cls: string, extra: string[]) =>
    JSON.parse(
      await lethe([
        'forget',
        '--data',
        data,
        '--store',
        store,
        '--class',
        cls,
        '--seed',
        seed,
        '--json',
        ...extra,
      ]),
    ) as T;
  // A receipt is read with the stored receipt's schema, not trusted as printed.
  const forgetOn = async (store: string, seed: string, cls: string, extra: string[]) => {
    const receipt = parseReceipt(await forgetJson<unknown>(store, seed, cls, extra));
    if (!isClassReceipt(receipt))
      throw new Error(`forget printed a ${receiptKind(receipt)} receipt`);
    return receipt;
  };

  const forget = async (seed: string, cls: string, model: string): Promise<void> => {
    // Every method starts from the same model; the first one measures "before", the others
    // reuse it (--before-from refuses a receipt of other weights).
    const firstReceipt = join(work, `before-${seed}-${cls}.json`);
    for (const method of methods) {
      const store = join(work, `s${seed}-${cls}-${method}`);
      cpSync(model, store, { recursive: true });
      console.log(`seed ${seed}: forget ${cls} with ${method}`);
      const reuse = existsSync(firstReceipt) ? ['--before-from', firstReceipt] : [];
      const preview =
        method === 'targeted'
          ? await forgetJson<ForgetPreview>(store, seed, cls, ['--dry-run'])
          : undefined;
      const receipt = await forgetOn(store, seed, cls, [
        ...(method === 'targeted' ? [] : ['--method', method]),
        ...reuse,
      ]);
      if (!existsSync(firstReceipt)) writeFileSync(firstReceipt, JSON.stringify(receipt));
      runs.push({ seed, cls, method, receipt, ...(preview ? { preview } : {}) });
      const sequenceFrom = method === 'targeted' && then && cls === classes[0];
      if (sequenceFrom) {
        console.log(`seed ${seed}: then forget ${then} on the same model`);
        const second = await forgetOn(store, seed, then, []);
        sequences.push({ seed, first: receipt, second });
      }
      rmSync(store, { recursive: true, force: true });
    }
  };
  const train = (seed: string, kind: Trained['kind']) => async (): Promise<void> => {
    const store = join(work, `${kind}-${seed}`);
    console.log(`seed ${seed}: training (${kind})`);
    const out = JSON.parse(
      await lethe([
        'train',
        '--data',
        data,
        '--store',
        store,
        '--preset',
        flag('preset')!,
        '--experts',
        flag('experts')!,
        '--epochs',
        flag('epochs')!,
        '--seed',
        seed,
        '--json',
        ...(kind === 'balance-only' ? ['--specialize', '0'] : []),
        ...(flag('limit') ? ['--limit', flag('limit')!] : []),
      ]),
    ) as {
      seconds: number;
      test?: { accuracy: number };
      routingHealth?: RoutingHealth;
    };
    trained.push({
      seed,
      kind,
      seconds: out.seconds,
      testAccuracy: 100 * (out.test?.accuracy ?? Number.NaN),
      health: out.routingHealth,
    });
    if (kind === 'balance-only') return rmSync(store, { recursive: true, force: true });
    for (const cls of classes) queue.add(() => forget(seed, cls, store));
  };
  try {
    for (const seed of seeds) {
      queue.add(train(seed, 'specialized'));
      if (flags['baseline']) queue.add(train(seed, 'balance-only'));
    }
    await queue.drain();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const results: Results = {
    command: `npm run bench:unlearn-class -- ${process.argv.slice(2).join(' ')}`,
    wallMinutes: (performance.now() - started) / 60000,
    runs,
    trained,
    sequences,
  };
  if (flag('results')) writeFileSync(flag('results')!, JSON.stringify(results, null, 1));
  return results;
}

function render({ command, runs, wallMinutes, trained, sequences }: Results): void {
  const methods = flag('methods')!.split(',') as Method[];
  const seeds = [...new Set(runs.map((r) => r.seed))];
  const classes = flag('classes')!.split(',');
  const find = (seed: string, cls: string, method: Method): Run | undefined =>
    runs.find((r) => r.seed === seed && r.cls === cls && r.method === method);
  const oracleOf = (r: Run): Receipt | undefined => find(r.seed, r.cls, 'retrain')?.receipt;
  const pct1 = (x: number | undefined): string => (x === undefined ? '—' : `${x.toFixed(1)}%`);
  const times = (x: number | undefined): string => (x === undefined ? '—' : `${x.toFixed(1)}×`);

  const methodRows = methods.map((method) => {
    const rs = runs.filter((r) => r.method === method);
    const cells = COLUMNS.map(([, get]) => fmt(rs.map((r) => get(r.receipt.metrics.after))));
    const retraining = rs.map((r) => r.receipt.timings.forgetSeconds);
    const total = rs.map((r) => endToEnd(r.receipt));
    return `| ${method} | ${cells.join(' | ')} | ${fmt(retraining)} s | ${fmt(total)} s |`;
  });

  const perRun = runs
    .filter((r) => r.method === 'targeted')
    .sort((a, b) => a.seed.localeCompare(b.seed) || classes.indexOf(a.cls) - classes.indexOf(b.cls))
    .map((r) => ({ run: r, checks: targetChecks(r, find(r.seed, r.cls, 'retrain')) }));
  const targetRows = (perRun[0]?.checks ?? []).map(([name], i) => {
    const verdicts = perRun.map((p) => p.checks[i]![1]);
    const known = verdicts.filter((v) => v !== undefined);
    const passed = known.filter(Boolean).length;
    const verdict =
      known.length === 0
        ? '—'
        : passed >= Math.min(known.length, Math.ceil((8 / 9) * known.length))
          ? 'met'
          : '**missed**';
    return `| ${name} | ${known.length ? `${passed}/${known.length}` : 'not measured'} | ${verdict} |`;
  });
  const perRunRows = perRun.map(({ run }) => {
    const r = run.receipt;
    const m = r.metrics.after;
    const o = oracleOf(run);
    const delta = (a: number, b: number | undefined): string =>
      b === undefined ? '—' : `${a - b >= 0 ? '+' : ''}${(a - b).toFixed(2)}`;
    const speed = (seconds: number): number | undefined =>
      o ? o.timings.forgetSeconds / seconds : undefined;
    const estimate = run.preview?.estimate.seconds?.total;
    return `| ${run.seed} | ${run.cls} | ${r.plan.experts.join(', ')} | ${pct1(r.plan.collateral)} | ${estimate === undefined ? '—' : `${estimate.toFixed(0)} s`} | ${m.unmasked.forgottenClassTestAccuracy.toFixed(2)} | ${delta(m.ra, o?.metrics.after.ra)} | ${delta(m.ta, o?.metrics.after.ta)} | ${m.unmasked.miaEfficacy.toFixed(2)} / ${o?.metrics.after.unmasked.miaEfficacy.toFixed(2) ?? '—'} | ${r.timings.forgetSeconds.toFixed(1)} s / ${endToEnd(r).toFixed(1)} s | ${o ? `${o.timings.forgetSeconds.toFixed(0)} s` : '—'} | ${times(speed(r.timings.forgetSeconds))} / ${times(speed(endToEnd(r)))} |`;
  });

  const trainedRows = trained
    .sort((a, b) => a.seed.localeCompare(b.seed) || a.kind.localeCompare(b.kind))
    .map((t) => {
      const h = t.health;
      const dead = h
        ? h.deadExperts.length
          ? h.deadExperts.map((e) => `e${e}`).join(' ')
          : 'none'
        : '—';
      return `| ${t.seed} | ${t.kind} | ${t.testAccuracy.toFixed(2)} | ${h ? `${h.minUtilisation.toFixed(2)}–${h.maxUtilisation.toFixed(2)}×` : '—'} | ${dead} | ${pct1(h?.meanConcentration)} | ${pct1(h?.meanCollateral)} | ${(t.seconds / 60).toFixed(1)} min |`;
    });
  const accuracyGap = seeds.flatMap((seed) => {
    const a = trained.find((t) => t.seed === seed && t.kind === 'specialized');
    const b = trained.find((t) => t.seed === seed && t.kind === 'balance-only');
    return a && b ? [a.testAccuracy - b.testAccuracy] : [];
  });
  const routingChecks = trained
    .filter((t) => t.kind === 'specialized' && t.health)
    .map((t) => ({
      fair: t.health!.minUtilisation >= 0.5,
      collateral: t.health!.meanCollateral <= 25,
    }));
  const count = (xs: boolean[]): string => `${xs.filter(Boolean).length}/${xs.length}`;

  const sequenceRows = sequences.map(({ seed, first, second }) => {
    const firstClass = first.request.classIndex;
    const stillForgotten = second.metrics.after.perClassTest[firstClass];
    return `| ${seed} | ${first.request.className} → ${second.request.className} | ${first.plan.experts.join(', ')} → ${second.plan.experts.join(', ')} | ${first.timings.forgetSeconds.toFixed(1)} s → ${second.timings.forgetSeconds.toFixed(1)} s | ${first.metrics.after.unmasked.forgottenClassTestAccuracy.toFixed(2)} → ${stillForgotten === undefined ? '—' : stillForgotten.toFixed(2)} | ${second.metrics.after.unmasked.forgottenClassTestAccuracy.toFixed(2)} | ${second.metrics.after.ta.toFixed(2)} |`;
  });

  writeSection(
    flag('section')!,
    [
      '## Forgetting a class on CIFAR-10 with the defaults (`npm run bench:unlearn-class`)',
      '',
      `${today()} · ${machine()} · engine **${runs[0]?.receipt.engine ?? 'unknown'}** · ${wallMinutes.toFixed(0)} min with ${flag('parallel')} lethe process(es) at once`,
      '',
      `Command: \`${command}\`. ${flag('preset')} MoE, E=${flag('experts')}, k=2, ${flag('epochs')} training epochs${flag('limit') ? ` on a seeded ${flag('limit')}-image subset of the CIFAR-10 training set` : ' on the 50,000 training images'}; the 10,000 test images. Every forget is \`lethe forget --class X\` with no recipe flag: what a user gets. Classes ${classes.join(', ')} × seeds ${seeds.join(', ')}; mean ± std over the runs. "Retraining" is the forgetting step alone (for retrain: training from scratch without the class, same recipe); "end to end" adds the router pass that plans it and the before/after measurement (the default \`sample\` measurement: all forgotten and at most 5,000 retained training samples, the whole test split). Speed-ups are per run, against the retrain of the same model and class.`,
      '',
      '### Routing after training',
      '',
      "On the test split (deterministic routing). Load is each expert's share of slots against the fair share; collateral is the mean over classes of the other classes' share on the experts a forget of the class retrains.",
      '',
      '| seed | training | test acc | load (min–max × fair) | dead experts | class concentration | collateral | training time |',
      '|---|---|---|---|---|---|---|---|',
      ...trainedRows,
      '',
      `Targets: no expert below 0.5× its fair share: ${count(routingChecks.map((c) => c.fair))}; mean collateral ≤ 25%: ${count(routingChecks.map((c) => c.collateral))}` +
        (accuracyGap.length
          ? `; test accuracy minus the balance-only model of the same seed: ${accuracyGap.map((g) => `${g >= 0 ? '+' : ''}${g.toFixed(2)}`).join(', ')} (target ≥ −1).`
          : '; no balance-only model was trained (--baseline).'),
      '',
      '### The default forget against retraining',
      '',
      '| method | ' + COLUMNS.map(([name]) => name).join(' | ') + ' | retraining | end to end |',
      '|---|' + COLUMNS.map(() => '---|').join('') + '---|---|',
      ...methodRows,
      '',
      'Targets, per targeted run (against the retrain of the same model and class; met when at least 8 of 9 runs, or all of fewer, meet it):',
      '',
      '| target | runs meeting it | verdict |',
      '|---|---|---|',
      ...targetRows,
      '',
      "Per targeted run: experts retrained and their collateral share; the `--dry-run` estimate of the end-to-end seconds; forgotten-class test accuracy (unmasked); RA and TA minus retrain's; unmasked MIA-Efficacy (targeted / retrain); seconds (retraining / end to end); retrain's seconds; speed-up (retraining / end to end):",
      '',
      '| seed | class | experts | collateral | dry-run estimate | forgotten acc | ΔRA | ΔTA | MIA | targeted | retrain | speed-up |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...perRunRows,
      '',
      ...(sequenceRows.length
        ? [
            '### Two forgets in a row on one model',
            '',
            '| seed | classes | experts retrained | retraining | first class test acc (after first → after second) | second class test acc | TA after both |',
            '|---|---|---|---|---|---|---|',
            ...sequenceRows,
          ]
        : []),
    ].join('\n'),
  );
}

async function main(): Promise<void> {
  const from = flag('renderFrom');
  render(from ? (JSON.parse(readFileSync(from, 'utf8')) as Results) : await runAll());
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
