import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { machine, today, writeSection } from './benchmarks-md';

interface TrainResult {
  engine: { engine: string; reason: string };
  classes: string[];
  trainSize: number;
  history: { epoch: number; loss: number; accuracy: number; seconds: number }[];
  test?: { accuracy: number; count: number; perClass: { accuracy: number }[] };
  seconds: number;
  parameters: { total: number };
}

const program = new Command()
  .requiredOption(
    '--data <dir>',
    'CIFAR-10 binary directory (../shared/data/make-cifar10-bin OUT writes one)',
  )
  .option('--preset <name>', 'model preset', 'small')
  .option('--experts <E>', 'experts', '4')
  .option('--top-k <K>', 'top k', '2')
  .option('--epochs <N>', 'epochs', '12')
  .option('--batch <B>', 'batch size', '128')
  .option('--lr <LR>', 'peak learning rate', '0.003')
  .option('--limit <N>', 'train on N samples only')
  .option('--no-augment', 'no random crop / flip')
  .parse();
const flags = program.opts<Record<string, string | boolean | undefined>>();

async function main(): Promise<void> {
  const data = resolve(String(flags['data']));
  if (!existsSync(data)) throw new Error(`no such directory: ${data}`);
  const store = mkdtempSync(join(tmpdir(), 'lethe-bench-train-'));
  const args = [
    join(__dirname, '..', '..', 'apps', 'cli', 'dist', 'main.js'),
    'train',
    '--data',
    `cifar10:${data}`,
    '--store',
    store,
    '--json',
    ...['preset', 'experts', 'top-k', 'epochs', 'batch', 'lr', 'limit'].flatMap((k) => {
      const v = flags[k.replace(/-(.)/g, (_, c: string) => c.toUpperCase())];
      return typeof v === 'string' ? [`--${k}`, v] : [];
    }),
    ...(flags['augment'] === false ? ['--no-augment'] : []),
  ];
  const started = Date.now();
  const stdout = await new Promise<string>((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolvePromise(out) : reject(new Error(`lethe train exited ${code}`)),
    );
  });
  const wall = (Date.now() - started) / 1000;
  rmSync(store, { recursive: true, force: true });
  const result = JSON.parse(stdout) as TrainResult;
  const command = `npm run bench:train -- ${process.argv.slice(2).join(' ')}`;
  const acc = result.test ? `${(result.test.accuracy * 100).toFixed(2)}%` : 'n/a';
  const lines = [
    '## MoE on CIFAR-10 (`npm run bench:train`)',
    '',
    `${today()} · ${machine()} · engine **${result.engine.engine}**`,
    '',
    `Command: \`${command}\` (data: CIFAR-10 binary from \`../shared/data/make-cifar10-bin\`).`,
    '',
    `| preset | E | k | params | train images | epochs | test accuracy | wall time | target |`,
    '|---|---|---|---|---|---|---|---|---|',
    `| ${String(flags['preset'])} | ${String(flags['experts'])} | ${String(flags['topK'])} | ${result.parameters.total} | ${result.trainSize} | ${result.history.length} | ${acc} on ${result.test?.count ?? 0} test images | ${(wall / 60).toFixed(1)} min | ≥ 70% in ≤ 45 min: ${result.test && result.test.accuracy >= 0.7 && wall <= 45 * 60 ? 'met' : 'missed'} |`,
    '',
    'Per epoch (train loss / train accuracy on the training batches / seconds):',
    '',
    ...result.history.map(
      (h) =>
        `- epoch ${h.epoch + 1}: ${h.loss.toFixed(3)} / ${(h.accuracy * 100).toFixed(1)}% / ${h.seconds.toFixed(0)} s`,
    ),
    '',
    `Per-class test accuracy: ${result.classes.map((c, i) => `${c} ${((result.test?.perClass[i]?.accuracy ?? Number.NaN) * 100).toFixed(1)}%`).join(', ')}.`,
  ];
  writeSection('train', lines.join('\n'));
  console.log(`test accuracy ${acc}, ${(wall / 60).toFixed(1)} min`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
