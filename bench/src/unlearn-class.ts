import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import {
  FORGET_METHODS,
  type ForgetMethod,
  type ForgetMetrics,
  type ForgetReceipt,
} from '@lethe/unlearning';
import { machine, today, writeSection } from './benchmarks-md';

type Method = ForgetMethod;
type Receipt = ForgetReceipt;
/** The metrics the table reports, one number each. */
type Metrics = Pick<
  ForgetMetrics,
  'ua' | 'ra' | 'ta' | 'forgottenClassTestAccuracy' | 'miaEfficacy' | 'featureProbe'
>;

const program = new Command()
  .requiredOption('--data <dir>', 'CIFAR-10 binary directory')
  .option('--classes <list>', 'classes to forget', 'airplane,cat,truck')
  .option('--seeds <list>', 'seeds', '0,1,2')
  .option('--methods <list>', 'methods', FORGET_METHODS.join(','))
  .option('--experts <E>', 'experts', '8')
  .option('--preset <name>', 'preset', 'small')
  .option('--epochs <N>', 'training epochs (and the retrain oracle)', '8')
  .option('--limit <N>', 'train on N samples (same subset for the oracle)')
  .option('--forget-epochs <N>', 'retraining epochs of the other methods', '5')
  .option('--forget-lr <LR>', 'retraining learning rate', '0.0001')
  .option('--retain-fraction <F>', 'targeted: share of retained samples to retrain on')
  .option('--section <name>', 'BENCHMARKS.md section to (re)write', 'unlearn-class')
  .parse();
const flags = program.opts<Record<string, string | undefined>>();
const CLI = join(__dirname, '..', '..', 'apps', 'cli', 'dist', 'main.js');

function lethe(args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolvePromise(out) : reject(new Error(`lethe ${args[0]} exited ${code}`)),
    );
  });
}

/** Speed-up over the oracle; a method that trains nothing (mask) has none to speak of. */
const speedUp = (oracle: number | undefined, t: number): string =>
  oracle === undefined ? 'n/a' : t < 0.5 ? 'no training' : `${(oracle / t).toFixed(1)}×`;
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]): number => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
const fmt = (xs: number[]): string => `${mean(xs).toFixed(2)} ± ${std(xs).toFixed(2)}`;

async function main(): Promise<void> {
  const data = `cifar10:${resolve(flags['data']!)}`;
  if (!existsSync(resolve(flags['data']!))) throw new Error(`no such directory: ${flags['data']}`);
  const methods = flags['methods']!.split(',') as Method[];
  const work = mkdtempSync(join(tmpdir(), 'lethe-bench-unlearn-'));
  const results = new Map<Method, Receipt[]>(methods.map((m) => [m, []]));
  try {
    for (const seed of flags['seeds']!.split(',')) {
      const trained = join(work, `trained-${seed}`);
      console.log(`seed ${seed}: training`);
      await lethe([
        'train',
        '--data',
        data,
        '--store',
        trained,
        '--preset',
        flags['preset']!,
        '--experts',
        flags['experts']!,
        '--top-k',
        '2',
        '--epochs',
        flags['epochs']!,
        '--seed',
        seed,
        '--json',
        ...(flags['limit'] ? ['--limit', flags['limit']] : []),
      ]);
      for (const cls of flags['classes']!.split(',')) {
        for (const method of methods) {
          const store = join(work, `s${seed}-${cls}-${method}`);
          cpSync(trained, store, { recursive: true });
          console.log(`seed ${seed}: forget ${cls} with ${method}`);
          const out = await lethe([
            'forget',
            '--data',
            data,
            '--store',
            store,
            '--class',
            cls,
            '--method',
            method,
            '--seed',
            seed,
            '--epochs',
            flags['forgetEpochs']!,
            '--lr',
            flags['forgetLr']!,
            '--json',
            ...(method === 'targeted' && flags['retainFraction']
              ? ['--retain-fraction', flags['retainFraction']]
              : []),
          ]);
          results.get(method)!.push(JSON.parse(out) as Receipt);
          rmSync(store, { recursive: true, force: true });
        }
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const oracle = results.get('retrain');
  const oracleTime = oracle ? mean(oracle.map((r) => r.timings.forgetSeconds)) : undefined;
  const rows = methods.map((method) => {
    const rs = results.get(method)!;
    const m = (k: keyof Metrics): string => fmt(rs.map((r) => r.metrics.after[k]));
    const t = mean(rs.map((r) => r.timings.forgetSeconds));
    return `| ${method} | ${m('ua')} | ${m('ra')} | ${m('ta')} | ${m('forgottenClassTestAccuracy')} | ${m('miaEfficacy')} | ${m('featureProbe')} | ${t.toFixed(1)} s | ${speedUp(oracleTime, t)} |`;
  });
  const before = results.get(methods[0]!)![0]!.metrics.before;
  writeSection(
    flags['section']!,
    [
      '## Forgetting a class on CIFAR-10 (`bench/src/unlearn-class.ts`)',
      '',
      `${today()} · ${machine()} · engine **${results.get(methods[0]!)![0]!.engine}**`,
      '',
      `Command: \`node bench/dist/unlearn-class.js ${process.argv.slice(2).join(' ')}\`. ${flags['preset']} MoE, E=${flags['experts']}, k=2; classes ${flags['classes']}; seeds ${flags['seeds']}; mean ± std over ${flags['classes']!.split(',').length * flags['seeds']!.split(',').length} runs. All numbers in percent after forgetting; wall time is the forgetting itself (retrain: full training without the class).`,
      '',
      `Before forgetting (first run): UA ${before.ua.toFixed(2)}, RA ${before.ra.toFixed(2)}, TA ${before.ta.toFixed(2)}, forgotten-class test accuracy ${before.forgottenClassTestAccuracy.toFixed(2)}, MIA-Efficacy ${before.miaEfficacy.toFixed(2)}, feature probe ${before.featureProbe.toFixed(2)}.`,
      '',
      '| method | UA | RA | TA | forgotten-class test acc | MIA-Efficacy | feature probe | wall time | speed-up vs retrain |',
      '|---|---|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
