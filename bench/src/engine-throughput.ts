import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '@lethe/engine';
import { getPreset, MoEModel } from '@lethe/model';
import { machine, today, writeSection } from './benchmarks-md';

interface Row {
  preset: string;
  batch: number;
  lethe: number;
  torch: number | undefined;
}

const program = new Command()
  .option('--presets <list>', 'comma-separated presets', 'tiny,small')
  .option('--batch <B>', 'batch size', (v) => Number(v), 128)
  .option('--experts <E>', 'experts', (v) => Number(v), 4)
  .option('--top-k <K>', 'top k', (v) => Number(v), 2)
  .option('--seconds <S>', 'time to measure each preset for', (v) => Number(v), 20)
  .option('--measure <preset>', '(internal) measure one preset in this process and print JSON')
  .parse();
const flags = program.opts<{
  presets: string;
  batch: number;
  experts: number;
  topK: number;
  seconds: number;
  measure?: string;
}>();

/** The first interpreter that can import torch: Debian's python3-torch lands in /usr/bin. */
function findTorchPython(): string | undefined {
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
    if (probe.status === 0) return python;
  }
  return undefined;
}

function measureLethe(preset: string): number {
  const model = new MoEModel({
    preset,
    experts: flags.experts,
    topK: flags.topK,
    numClasses: 10,
    inputShape: [32, 32, 3],
    routerNoise: 1,
    balanceWeight: 0.01,
    seed: 0,
  });
  const x = tf.randomNormal([flags.batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.randomUniform([flags.batch], 0, 10, 'int32', 2) as tf.Tensor1D;
  for (let i = 0; i < 3; i++) model.trainStep(x, y, { learningRate: 1e-3 });
  let steps = 0;
  const start = performance.now();
  while (performance.now() - start < flags.seconds * 1000 || steps < 3) {
    model.trainStep(x, y, { learningRate: 1e-3 });
    steps++;
  }
  const seconds = (performance.now() - start) / 1000;
  tf.dispose([x, y]);
  model.dispose();
  return (steps * flags.batch) / seconds;
}

function measureTorch(python: string, preset: string, imagesPerSecondHint: number): number {
  const steps = Math.max(5, Math.round((imagesPerSecondHint * flags.seconds) / flags.batch));
  const config = {
    preset: getPreset(preset),
    experts: flags.experts,
    topK: flags.topK,
    classes: 10,
    batch: flags.batch,
    steps,
  };
  const run = spawnSync(
    python,
    [join(__dirname, '..', 'torch', 'moe_train_step.py'), JSON.stringify(config)],
    {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    },
  );
  if (run.status !== 0) throw new Error(`PyTorch run failed: ${run.stderr}`);
  return (JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { imagesPerSecond: number })
    .imagesPerSecond;
}

/**
 * Each preset runs in a fresh process: measured one after another in one process, the second
 * preset ran ~30% slower (the wasm heap grown and fragmented by the first).
 */
function measureLetheInChild(preset: string): {
  imagesPerSecond: number;
  engine: string;
  reason: string;
} {
  const run = spawnSync(
    process.execPath,
    [
      __filename,
      '--measure',
      preset,
      ...['--batch', '--experts', '--top-k', '--seconds'].flatMap((f, i) => [
        f,
        String([flags.batch, flags.experts, flags.topK, flags.seconds][i]),
      ]),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (run.status !== 0) throw new Error(`measuring ${preset} failed`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
    imagesPerSecond: number;
    engine: string;
    reason: string;
  };
}

async function main(): Promise<void> {
  if (flags.measure) {
    const info = await initEngine({ log: () => undefined });
    const imagesPerSecond = measureLethe(flags.measure);
    process.stdout.write(
      `${JSON.stringify({ imagesPerSecond, engine: info.engine, reason: info.reason })}\n`,
    );
    return;
  }
  let engine = { engine: 'unknown', reason: '' };
  const python = findTorchPython();
  if (!python)
    console.log('PyTorch not importable (apt-get install python3-torch): Lethe numbers only');
  const rows: Row[] = [];
  for (const preset of flags.presets.split(',')) {
    const measured = measureLetheInChild(preset);
    engine = measured;
    const lethe = measured.imagesPerSecond;
    const torch = python ? measureTorch(python, preset, lethe) : undefined;
    rows.push({ preset, batch: flags.batch, lethe, torch });
    console.log(
      `${preset}: lethe ${lethe.toFixed(1)} img/s` +
        (torch ? `, PyTorch ${torch.toFixed(1)} img/s, ratio ${(lethe / torch).toFixed(2)}` : ''),
    );
  }
  const lines = [
    '## Engine throughput (`npm run bench:engine`)',
    '',
    `${today()} · ${machine()} · engine **${engine.engine}** (${engine.reason})`,
    '',
    `Command: \`npm run bench:engine -- ${process.argv.slice(2).join(' ')}\`. One training step = router + top-${flags.topK} of ${flags.experts} experts (sparse dispatch), cross-entropy + balance loss, AdamW; random 32×32×3 inputs, 10 classes. PyTorch: the same network in \`bench/torch/moe_train_step.py\`, one thread (\`torch.set_num_threads(1)\`).`,
    '',
    '| preset | batch | Lethe images/s | PyTorch images/s | Lethe / PyTorch | target ≥ 0.40 |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.preset} | ${r.batch} | ${r.lethe.toFixed(1)} | ${r.torch?.toFixed(1) ?? 'n/a'} | ${r.torch ? (r.lethe / r.torch).toFixed(2) : 'n/a'} | ${r.torch ? (r.lethe / r.torch >= 0.4 ? 'met' : 'missed') : 'n/a'} |`,
    ),
  ];
  writeSection('engine', lines.join('\n'));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
