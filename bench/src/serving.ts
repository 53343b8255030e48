import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { makeSyntheticDataset, writeCifar10 } from '@lethe/data';
import {
  CoordinatorClient,
  type Job,
  JobState,
  PredictRequest,
  StartTrainingRequest,
  SubmitForgetRequest,
  TrainingMode,
} from '@lethe/proto';
import { Command } from 'commander';
import { machine, today, writeSection } from './benchmarks-md';
import { startLocalCluster } from './local-cluster';

const program = new Command()
  .option('--data <dir>', 'CIFAR-10 binary directory; default: generated shapes images')
  .option('--preset <name>', 'model preset', 'small')
  .option('--experts <E>', 'experts', '4')
  .option('--limit <N>', 'training samples', '2000')
  .option('--workers <N>', 'worker processes', '2')
  .option('--clients <N>', 'concurrent clients per RPC', '4')
  .option('--seconds <N>', 'longest measurement per phase', '30')
  .parse();
const flags = program.opts<{
  data?: string;
  preset: string;
  experts: string;
  limit: string;
  workers: string;
  clients: string;
  seconds: string;
}>();

type Rpc = 'Health.Check' | 'Predict (8 images)' | 'ListWorkers';
const RPCS: Rpc[] = ['Health.Check', 'Predict (8 images)', 'ListWorkers'];
/** Pause between one client's calls, so that the load is steady rather than flat out. */
const PAUSE_MS: Record<Rpc, number> = {
  'Health.Check': 100,
  'Predict (8 images)': 200,
  ListWorkers: 200,
};
const DEADLINE_MS = 10_000;

interface Samples {
  ms: number[];
  failed: number;
  /** Manifest revisions Predict answered from. */
  revisions: Set<number>;
}

/** grpc.health.v1.Health/Check with an empty request (the server as a whole). */
function healthCheck(client: grpc.Client): Promise<void> {
  return new Promise((ok, fail) =>
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (request: Buffer) => request,
      (response: Buffer) => response,
      Buffer.alloc(0),
      { deadline: Date.now() + DEADLINE_MS },
      (error, response) => {
        // HealthCheckResponse { status = 1 }: SERVING is 1, encoded 0x08 0x01.
        if (error) fail(error);
        else if (response?.[1] !== 1) fail(new Error('not SERVING'));
        else ok();
      },
    ),
  );
}

function unary<Req, Res>(
  method: (
    request: Req,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (error: grpc.ServiceError | null, response: Res) => void,
  ) => grpc.ClientUnaryCall,
  client: CoordinatorClient,
  request: Req,
): Promise<Res> {
  return new Promise((ok, fail) =>
    method.call(
      client,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + DEADLINE_MS },
      (error, response) => (error ? fail(error) : ok(response)),
    ),
  );
}

const images = PredictRequest.fromPartial({
  images: Array.from({ length: 8 }, (_, i) => ({
    data: Buffer.alloc(32 * 32 * 3, 30 * i),
    height: 32,
    width: 32,
    channels: 3,
  })),
});

/** Concurrent clients calling each RPC until `until` resolves; latency of every call. */
async function load(address: string, until: Promise<unknown>): Promise<Record<Rpc, Samples>> {
  const samples = Object.fromEntries(
    RPCS.map((r) => [r, { ms: [], failed: 0, revisions: new Set<number>() }]),
  ) as unknown as Record<Rpc, Samples>;
  let stop = false;
  void until.finally(() => (stop = true));
  const loops: Promise<void>[] = [];
  const clients: grpc.Client[] = [];
  for (let c = 0; c < Number(flags.clients); c++) {
    for (const rpc of RPCS) {
      // A channel per client, as separate processes would have.
      const client = new CoordinatorClient(address, grpc.credentials.createInsecure());
      clients.push(client);
      loops.push(
        (async () => {
          while (!stop) {
            const started = performance.now();
            try {
              if (rpc === 'Health.Check') await healthCheck(client);
              else if (rpc === 'ListWorkers') await unary(client.listWorkers, client, {});
              else {
                const answer = await unary(client.predict, client, images);
                samples[rpc].revisions.add(answer.manifestRevision);
              }
              samples[rpc].ms.push(performance.now() - started);
            } catch {
              samples[rpc].failed++;
            }
            await new Promise((r) => setTimeout(r, PAUSE_MS[rpc]));
          }
        })(),
      );
    }
  }
  await Promise.all(loops);
  for (const client of clients) client.close();
  return samples;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Resolves when the job leaves QUEUED/RUNNING, with its final state. */
async function finished(client: CoordinatorClient, jobId: string): Promise<Job> {
  for (;;) {
    const job = await unary(client.getJob, client, { jobId });
    const live = [JobState.JOB_STATE_QUEUED, JobState.JOB_STATE_RUNNING];
    if (![...live, JobState.JOB_STATE_CANCELLING].includes(job.state)) return job;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Resolves once the job runs (or has ended). */
async function running(client: CoordinatorClient, jobId: string): Promise<void> {
  for (;;) {
    const job = await unary(client.getJob, client, { jobId });
    if (job.state !== JobState.JOB_STATE_QUEUED) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lethe-bench-serving-'));
  let data: string;
  if (flags.data) {
    data = `cifar10:${resolve(flags.data)}`;
  } else {
    const perClass = Math.ceil(Number(flags.limit) / 6);
    data = `cifar10:${writeCifar10(join(dir, 'data'), {
      train: makeSyntheticDataset({ perClass, split: 'train', seed: 1 }),
      test: makeSyntheticDataset({ perClass: 100, split: 'test', seed: 2 }),
    })}`;
  }
  const cluster = await startLocalCluster(dir, flags.workers);
  try {
    const { coordinator } = cluster;
    const client = new CoordinatorClient(coordinator, grpc.credentials.createInsecure());
    const train = (requestId: string, epochs: number) =>
      StartTrainingRequest.fromPartial({
        requestId,
        mode: TrainingMode.TRAINING_MODE_JOINT,
        dataset: { source: { $case: 'uri', value: data }, limit: Number(flags.limit) },
        preset: flags.preset,
        experts: Number(flags.experts),
        epochs,
        batchSize: 64,
      });
    console.log('training the model to serve');
    const first = await unary(client.startTraining, client, train('bench-model', 2));
    const model = await finished(client, first.jobId);
    if (model.state !== JobState.JOB_STATE_SUCCEEDED) throw new Error(`training: ${model.error}`);
    const windowMs = Number(flags.seconds) * 1000;

    // The machine may be shared: its load average, from before the first phase to after the last.
    const loadBefore = loadavg()[0]!;
    console.log('idle');
    const idle = await load(coordinator, sleep(Math.min(windowMs, 15_000)));

    console.log('during training');
    const training = await unary(client.startTraining, client, train('bench-retrain', 20));
    await running(client, training.jobId);
    const duringTraining = await load(
      coordinator,
      Promise.race([finished(client, training.jobId), sleep(windowMs)]),
    );
    await unary(client.cancelJob, client, { jobId: training.jobId });
    await finished(client, training.jobId);

    console.log('during a forget');
    const forget = await unary(
      client.submitForget,
      client,
      SubmitForgetRequest.fromPartial({
        requestId: 'bench-forget',
        target: { $case: 'classIndex', value: 1 },
      }),
    );
    await running(client, forget.job!.jobId);
    const duringForget = await load(
      coordinator,
      Promise.race([finished(client, forget.job!.jobId), sleep(windowMs)]),
    );
    const forgot = await finished(client, forget.job!.jobId);
    const loadAfter = loadavg()[0]!;
    client.close();

    const phases = [
      ['idle', idle],
      ['during training', duringTraining],
      ['during a forget', duringForget],
    ] as const;
    const rows: string[] = [];
    for (const [phase, samples] of phases) {
      for (const rpc of RPCS) {
        const s = samples[rpc];
        const p99 = percentile(s.ms, 99);
        const target =
          phase === 'idle' || rpc === 'ListWorkers'
            ? '—'
            : rpc === 'Health.Check'
              ? `p99 ≤ 100 ms, no failure: ${p99 <= 100 && s.failed === 0 ? 'met' : 'missed'}`
              : `p99 ≤ 1 s, no failure: ${p99 <= 1000 && s.failed === 0 ? 'met' : 'missed'}`;
        const revisions = rpc.startsWith('Predict')
          ? ` (revisions ${[...s.revisions].join(', ')})`
          : '';
        rows.push(
          `| ${phase} | ${rpc}${revisions} | ${s.ms.length} | ${s.failed} | ${percentile(s.ms, 50).toFixed(1)} | ${p99.toFixed(1)} | ${Math.max(...s.ms).toFixed(1)} | ${target} |`,
        );
        console.log(rows.at(-1));
      }
    }
    const args = process.argv.slice(2).join(' ');
    const engine = process.env['LETHE_ENGINE'];
    const command = `${engine ? `LETHE_ENGINE=${engine} ` : ''}npm run bench:serving${args ? ` -- ${args}` : ''}`;
    writeSection(
      'serving',
      [
        '## Serving while training and forgetting (`npm run bench:serving`)',
        '',
        `${today()} · ${machine()} · engine **${engine ?? 'auto'}** (the coordinator and workers log the one they chose) · 1-minute load average ${loadBefore.toFixed(1)} before the idle phase, ${loadAfter.toFixed(1)} after the forget`,
        '',
        `Command: \`${command}\`. \`lethe up --workers ${flags.workers}\` on loopback; a \`${flags.preset}\` model (E=${flags.experts}) trained on ${flags.limit} ${flags.data ? 'CIFAR-10' : 'generated 32×32'} images, then ${flags.clients} concurrent clients per RPC (each its own channel, a pause of 100 ms between health checks and 200 ms between other calls, ${DEADLINE_MS / 1000} s deadline) while idle, while a training job runs and while a class forget runs (targeted, default options; the window ends when the job does or after ${flags.seconds} s). Latency in milliseconds; a failed call is any status other than OK. The forget job ended ${JobState[forgot.state]}.`,
        '',
        '| phase | RPC | calls | failed | p50 | p99 | max | target |',
        '|---|---|---|---|---|---|---|---|',
        ...rows,
        '',
        "Read with care: the idle window includes the first Predict calls, which start the serving engine thread and the workers' serving threads and load the experts' serving copies (the idle maximum). Each worker computes its training and serving copies in threads of their own and answers gRPC on its main thread, so a Predict does not queue behind a training step; it still shares 2 cores with the coordinator's jobs thread, both workers' training threads and the clients (and, on a shared machine, whatever else runs: the load average above). Health and ListWorkers answer from the coordinator's main thread, which runs no tensor work.",
      ].join('\n'),
    );
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
