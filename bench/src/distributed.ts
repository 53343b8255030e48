import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  CoordinatorClient,
  type JobEvent,
  JobState,
  StartTrainingRequest,
  TrainingMode,
} from '@lethe/proto';
import { Command } from 'commander';
import { machine, today, writeSection } from './benchmarks-md';
import { CLI, startLocalCluster } from './local-cluster';

const program = new Command()
  .requiredOption('--data <dir>', 'CIFAR-10 binary directory (../shared/data/make-cifar10-bin)')
  .option('--preset <name>', 'model preset', 'small')
  .option('--experts <E>', 'experts', '4')
  .option('--top-k <K>', 'top k', '2')
  .option('--batch <B>', 'batch size', '128')
  .option('--limit <N>', 'training samples', '3840')
  .option('--epochs <N>', 'epochs', '1')
  .option('--workers <N>', 'worker processes', '2')
  .parse();
const flags = program.opts<{
  data: string;
  preset: string;
  experts: string;
  topK: string;
  batch: string;
  limit: string;
  epochs: string;
  workers: string;
}>();

interface LocalResult {
  engine: { engine: string };
  history: { epoch: number; seconds: number }[];
  trainSize: number;
}

function run(args: string[], cwd?: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      ...(cwd ? { cwd } : {}),
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolvePromise(out) : reject(new Error(`lethe ${args[0]} exited ${code}`)),
    );
  });
}

/** One process: `lethe train` on the same data and recipe. */
async function singleProcess(data: string): Promise<{ imagesPerSecond: number; engine: string }> {
  const store = mkdtempSync(join(tmpdir(), 'lethe-bench-single-'));
  try {
    const out = await run([
      'train',
      '--data',
      data,
      '--store',
      store,
      '--json',
      '--no-augment',
      '--preset',
      flags.preset,
      '--experts',
      flags.experts,
      '--top-k',
      flags.topK,
      '--batch',
      flags.batch,
      '--limit',
      flags.limit,
      '--epochs',
      flags.epochs,
      '--schedule',
      'constant',
    ]);
    const result = JSON.parse(out) as LocalResult;
    const batch = Number(flags.batch);
    const images = Math.floor(result.trainSize / batch) * batch;
    const seconds = result.history.reduce((s, h) => s + h.seconds, 0);
    return {
      imagesPerSecond: (images * result.history.length) / seconds,
      engine: result.engine.engine,
    };
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

/** `lethe up --workers N`, then StartTraining over gRPC with the same recipe. */
async function distributed(
  data: string,
): Promise<{ imagesPerSecond: number; rpcShare: number; stepSeconds: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'lethe-bench-cluster-'));
  const cluster = await startLocalCluster(dir, flags.workers);
  try {
    const { coordinator } = cluster;
    const client = new CoordinatorClient(coordinator, grpc.credentials.createInsecure());
    const job = await new Promise<{ jobId: string }>((ok, fail) =>
      client.startTraining(
        StartTrainingRequest.fromPartial({
          mode: TrainingMode.TRAINING_MODE_JOINT,
          dataset: { source: { $case: 'uri', value: data }, limit: Number(flags.limit) },
          preset: flags.preset,
          experts: Number(flags.experts),
          topK: Number(flags.topK),
          epochs: Number(flags.epochs),
          batchSize: Number(flags.batch),
          schedule: 1,
          augment: false,
        }),
        (error, response) => (error ? fail(error) : ok(response)),
      ),
    );
    let last: JobEvent | undefined;
    const outcome = { state: JobState.JOB_STATE_UNSPECIFIED as JobState, error: '' };
    await new Promise<void>((ok, fail) => {
      const stream = client.watchJob({ jobId: job.jobId, includeLogs: false });
      stream.on('data', (event: JobEvent) => {
        if (event.event?.$case === 'progress' && event.event.value.phase === 'train') last = event;
        if (event.event?.$case === 'status') {
          outcome.state = event.event.value.state;
          outcome.error = event.event.value.job?.error ?? '';
        }
      });
      stream.on('end', ok);
      stream.on('error', fail);
    });
    client.close();
    if (outcome.state !== JobState.JOB_STATE_SUCCEEDED) {
      throw new Error(`training job ended in state ${outcome.state}: ${outcome.error}`);
    }
    const progress = last?.event?.$case === 'progress' ? last.event.value : undefined;
    if (!progress) throw new Error('no progress reported');
    return {
      imagesPerSecond: progress.imagesPerSecond,
      rpcShare: progress.rpcShare ?? Number.NaN,
      stepSeconds: progress.stepSeconds ?? Number.NaN,
    };
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = resolve(flags.data);
  if (!existsSync(dir)) throw new Error(`no such directory: ${dir}`);
  const data = `cifar10:${dir}`;
  const single = await singleProcess(data);
  console.log(`one process: ${single.imagesPerSecond.toFixed(1)} images/s`);
  const multi = await distributed(data);
  console.log(
    `coordinator + ${flags.workers} workers: ${multi.imagesPerSecond.toFixed(1)} images/s, RPC ${(multi.rpcShare * 100).toFixed(1)}% of step time`,
  );
  const speedup = multi.imagesPerSecond / single.imagesPerSecond;
  const command = `npm run bench:distributed -- ${process.argv.slice(2).join(' ')}`;
  writeSection(
    'distributed',
    [
      '## Expert parallelism: one process vs coordinator + workers (`npm run bench:distributed`)',
      '',
      `${today()} · ${machine()} · engine **${single.engine}**`,
      '',
      `Command: \`${command}\`. The same model (\`${flags.preset}\`, E=${flags.experts}, k=${flags.topK}), data (${flags.limit} CIFAR-10 training images, no augmentation) and recipe (batch ${flags.batch}, ${flags.epochs} epoch(s), constant learning rate), trained by \`lethe train\` in one process and by \`lethe up --workers ${flags.workers}\` (a coordinator process holding the router and ${flags.workers} worker processes holding the experts, gRPC on loopback). Images/s over the whole run, warm-up included, in both.`,
      '',
      '| setup | images/s | vs one process | RPC share of step time | target |',
      '|---|---|---|---|---|',
      `| one process | ${single.imagesPerSecond.toFixed(1)} | 1.00× | — | — |`,
      `| coordinator + ${flags.workers} workers | ${multi.imagesPerSecond.toFixed(1)} | ${speedup.toFixed(2)}× | ${(multi.rpcShare * 100).toFixed(1)}% (step ${(multi.stepSeconds * 1000).toFixed(0)} ms) | ≥ 1.7× and RPC ≤ 10%: ${speedup >= 1.7 ? 'speed met' : 'speed missed'}, ${multi.rpcShare <= 0.1 ? 'RPC met' : 'RPC missed'} |`,
      '',
      'RPC share: per step, the time the coordinator waited on its Forward and Backward calls minus the longest compute time a worker reported for each (so serialisation, loopback transport and queueing), over the step time.',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
