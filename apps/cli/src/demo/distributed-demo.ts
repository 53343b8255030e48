import { join, relative } from 'node:path';
import { writeCifar10 } from '@lethe/data';
import {
  type CoordinatorClient,
  EvaluateRequest,
  type EvaluateResponse,
  type ExpertInfo,
  type Job,
  JobState,
  Receipt,
} from '@lethe/proto';
import { type EmbeddedCluster, startEmbeddedCluster } from '../cluster/embedded-cluster';
import { printRemoteEvaluation, printRemoteReceipt } from '../remote/format';
import {
  callUnary,
  connectCoordinator,
  EVALUATE_DEADLINE_MS,
  jobStateName,
  remoteError,
  watchJob,
} from '../remote/grpc';
import { jobProgress } from '../remote/job-progress';
import { forgetRequest, trainingRequest } from '../remote/remote-jobs';
import { WASM_NOTE } from '../terminal/engine';
import { CliError } from '../terminal/errors';
import { onStopSignals } from '../terminal/signals';
import { FORGET_METRICS_LEGEND, forgetSummary, percent, table } from '../terminal/tables';
import { finishDemoDir, freshDemoDir } from './demo-dir';
import { type DemoResult, demoMetrics } from './demo-result';
import { demoDatasets, type DemoOptions, FORGET, TRAINING } from './recipe';

export interface DistributedDemoOptions extends DemoOptions {
  /** The demo directory: data, store, coordinator database and logs; replaced on each run. */
  dir: string;
  /** Worker processes. */
  workers: number;
}

const say = (message: string): void => {
  process.stderr.write(`${message}\n`);
};

/** The job being watched, if any: Ctrl-C cancels it before stopping the cluster. */
interface Watching {
  jobId: string | undefined;
}

/** Watches a job with the progress display; fails in one line unless it SUCCEEDED. */
async function follow(client: CoordinatorClient, job: Job, watching: Watching): Promise<Job> {
  const progress = jobProgress(5);
  let final: Job;
  watching.jobId = job.jobId;
  try {
    final = await watchJob(client, job.jobId, progress.onEvent);
  } finally {
    progress.stop();
  }
  watching.jobId = undefined;
  if (final.state !== JobState.JOB_STATE_SUCCEEDED) {
    throw new CliError(
      `job ${final.jobId} ${jobStateName(final.state)}${final.error ? `: ${final.error}` : ''}`,
    );
  }
  return final;
}

const evaluate = (client: CoordinatorClient): Promise<EvaluateResponse> =>
  callUnary(client, client.evaluate, EvaluateRequest.fromPartial({ batchSize: 256 }), {
    deadlineMs: EVALUATE_DEADLINE_MS,
  });

const listExperts = async (client: CoordinatorClient): Promise<ExpertInfo[]> =>
  (await callUnary(client, client.listExperts, {})).experts;

/** Names a worker as the coordinator does (`w-1`) and as the cluster table does (`worker-2`, pid). */
type WorkerLabel = (e: ExpertInfo | undefined) => string;

function workerLabel(cluster: EmbeddedCluster): WorkerLabel {
  const port = (address: string): string => address.slice(address.lastIndexOf(':') + 1);
  return (e) => {
    if (!e?.workerId) return 'unassigned';
    const child = cluster.children.find(
      (c) =>
        c.role === 'worker' &&
        (c.address === e.workerAddress || port(c.address) === port(e.workerAddress)),
    );
    return child ? `${e.workerId} = ${child.name} (pid ${child.pid})` : e.workerId;
  };
}

/** The engines the workers report, e.g. `wasm`; the demo names what it ran on. */
async function workerEngines(client: CoordinatorClient): Promise<string> {
  const { workers } = await callUnary(client, client.listWorkers, {});
  return [...new Set(workers.map((w) => w.device?.engine).filter(Boolean))].join(', ') || 'unknown';
}

const hash = (e: ExpertInfo | undefined): string => e?.checkpoint?.sha256.slice(0, 12) || '—';

/** The demo's steps against a running cluster: train, evaluate, forget, show the evidence. */
async function runAgainst(
  client: CoordinatorClient,
  spec: string,
  options: DistributedDemoOptions,
  where: WorkerLabel,
  watching: Watching,
): Promise<{ receipt: Receipt; retrained: number[]; engine: string }> {
  // Train: expert-parallel across the workers, the router on the coordinator.
  const started = performance.now();
  const job = await callUnary(
    client,
    client.startTraining,
    trainingRequest({
      data: spec,
      preset: TRAINING.preset,
      experts: TRAINING.experts,
      topK: TRAINING.topK,
      epochs: options.epochs,
      batch: TRAINING.batchSize,
      lr: TRAINING.learningRate,
      weightDecay: TRAINING.weightDecay,
      schedule: TRAINING.schedule,
      seed: TRAINING.seed,
      augment: TRAINING.augment,
      balance: TRAINING.balanceWeight,
      routerNoise: TRAINING.routerNoise,
      requestId: 'demo-train',
      json: false,
    }),
  );
  console.log(
    `\ntraining a ${TRAINING.preset} MoE (${TRAINING.experts} experts, top-${TRAINING.topK}) for ${options.epochs} epochs: job ${job.jobId}`,
  );
  const trained = await follow(client, job, watching);
  const p = trained.progress;
  console.log(
    `trained in ${((performance.now() - started) / 1000).toFixed(1)} s: manifest revision ${trained.manifestRevision}` +
      (p
        ? `, last epoch train loss ${p.loss.toFixed(3)}, train accuracy ${percent(p.accuracy)}, ${Math.round(p.imagesPerSecond)} img/s`
        : ''),
  );

  const placed = await listExperts(client);
  console.log('\nexperts and the workers hosting them:');
  console.log(
    table([
      ['expert', 'worker', 'checkpoint', 'parameters'],
      ...placed.map((e) => [`e${e.expertId}`, where(e), hash(e), e.parameters]),
    ]),
  );

  console.log('\ntest split, evaluated by the coordinator with the experts on the workers:');
  const before = await evaluate(client);
  printRemoteEvaluation(before);

  // Forget: plan on the coordinator, retrain the chosen experts where they live.
  console.log(
    `\nforgetting class "${FORGET.className}": only the experts that saw it, plus the router`,
  );
  const submitted = await callUnary(
    client,
    client.submitForget,
    forgetRequest({
      class: FORGET.className,
      epochs: FORGET.epochs,
      lr: FORGET.learningRate,
      lambda: 0,
      maskOutput: false,
      batch: FORGET.batchSize,
      seed: 0,
      requestId: FORGET.requestId,
      json: false,
    }),
  );
  if (!submitted.job) throw new CliError('the coordinator answered SubmitForget without a job');
  say(`forget request ${FORGET.requestId}: job ${submitted.job.jobId}`);
  await follow(client, submitted.job, watching);
  const receipt = await callUnary(client, client.getReceipt, {
    requestId: submitted.receiptId || FORGET.requestId,
  });
  console.log('');
  printRemoteReceipt(receipt);
  console.log(FORGET_METRICS_LEGEND);

  const now = await listExperts(client);
  const retrained = receipt.expertsRetrained;
  console.log(
    `\nretrained experts ${retrained.map((e) => `e${e}`).join(', ') || 'none'} on their workers, and the router on the coordinator:`,
  );
  console.log(
    table([
      ['expert', 'worker', 'retrained', 'checkpoint before', 'after'],
      ...now.map((e) => {
        const old = placed.find((o) => o.expertId === e.expertId);
        return [
          `e${e.expertId}`,
          where(e),
          retrained.includes(e.expertId) ? 'yes' : 'no (unchanged)',
          hash(old),
          hash(e),
        ];
      }),
    ]),
  );

  const after = await evaluate(client);
  const perClass = after.perClass
    .map((c) => `${c.className || c.classIndex} ${percent(c.accuracy)}`)
    .join(', ');
  console.log(
    `\ntest accuracy after forgetting, every class: ${percent(after.accuracy, 2)} on ${after.samples} images: ${perClass}`,
  );
  return { receipt, retrained, engine: receipt.engine || (await workerEngines(client)) };
}

/**
 * `lethe demo`: the distributed default on this machine. Writes the shapes as CIFAR-10 files
 * into the demo directory, starts a coordinator and `workers` worker processes over a store
 * there, trains, evaluates and forgets over gRPC, and always stops the processes — on success,
 * failure or Ctrl-C (a second Ctrl-C kills them).
 */
export async function runDistributedDemo(options: DistributedDemoOptions): Promise<DemoResult> {
  const started = performance.now();
  const { train, test } = demoDatasets(options);
  if (!train.classes.includes(FORGET.className)) {
    throw new CliError(`the demo data has no class ${FORGET.className}`);
  }
  const dir = await freshDemoDir(options.dir);
  const data = writeCifar10(join(dir, 'data'), { train, test });
  const spec = `cifar10:${data}`;
  const store = join(dir, 'store');
  console.log(
    `Lethe demo: ${train.classes.length} classes of generated shapes (${train.classes.join(', ')}), ` +
      `${train.size} training and ${test.size} test images`,
  );
  console.log(
    `demo directory ${dir} (replaced on each run): data ${spec}, store ${store}, logs ${join(dir, 'logs')}`,
  );

  // Signals: the first cancels the running job and stops the cluster (the run then fails with
  // exit code 130), a second kills the processes.
  const interrupted = new AbortController();
  const watching: Watching = { jobId: undefined };
  let cluster: EmbeddedCluster | undefined;
  let client: CoordinatorClient | undefined;
  let halting: Promise<void> | undefined;
  const halt = (): Promise<void> =>
    (halting ??= (async () => {
      const jobId = watching.jobId;
      if (client && jobId) {
        // A job cut off by its workers stopping would retry them until killed; cancelled, it ends.
        await callUnary(client, client.cancelJob, { jobId }, { deadlineMs: 2000 }).catch(
          () => undefined,
        );
      }
      await cluster?.stop();
    })());
  const signals = onStopSignals(
    (signal) => {
      say(`${signal}: stopping the demo cluster…`);
      interrupted.abort();
      void halt();
    },
    (signal) => {
      say(`${signal} again: killing the demo cluster`);
      cluster?.kill();
    },
  );
  try {
    say(`starting a coordinator and ${options.workers} workers…`);
    cluster = await startEmbeddedCluster({
      workers: options.workers,
      store,
      port: 0,
      host: '127.0.0.1',
      log: say,
      signal: interrupted.signal,
    });
    console.log(
      `\ncluster on this machine (stopped when the demo ends):\n` +
        table([
          ['process', 'pid', 'address', 'log'],
          ...cluster.children.map((c) => [
            c.name,
            c.pid,
            c.address,
            relative(process.cwd(), c.logFile) || c.logFile,
          ]),
        ]),
    );
    client = connectCoordinator(cluster.address);
    const address = cluster.address;
    const result = await runAgainst(client, spec, options, workerLabel(cluster), watching).catch(
      (error: unknown) => {
        throw remoteError(error, address);
      },
    );
    const { before, after } = result.receipt.metrics ?? {};
    console.log(
      `\ndemo finished in ${((performance.now() - started) / 1000).toFixed(1)} s on the ${result.engine} engine: ` +
        (before && after ? `${forgetSummary(FORGET.className, before, after)}, ` : '') +
        `retrained ${result.retrained.map((e) => `e${e}`).join(', ')} on ${options.workers} workers + the router`,
    );
    if (result.engine === 'wasm') console.log(WASM_NOTE);
    const storeArg = relative(process.cwd(), store) || store;
    console.log(
      `next: npx lethe receipts --store ${storeArg} --request-id ${FORGET.requestId}; npx lethe up for a cluster that stays up; npx lethe demo --local for the in-process demo.`,
    );
    return {
      mode: 'distributed',
      engine: result.engine,
      seconds: (performance.now() - started) / 1000,
      requestId: result.receipt.requestId,
      className: FORGET.className,
      expertsRetrained: result.retrained,
      metrics: { before: demoMetrics(before), after: demoMetrics(after) },
      receipt: Receipt.toJSON(result.receipt),
    };
  } catch (error) {
    if (interrupted.signal.aborted) {
      throw new CliError('interrupted: the demo cluster was stopped', 130);
    }
    throw error;
  } finally {
    if (cluster) {
      if (!halting) say('stopping the demo cluster…');
      await halt();
      await cluster.stop(); // the same stop (a signal may have come before the cluster existed)
      say('demo cluster stopped');
    }
    client?.close();
    signals.dispose();
    await finishDemoDir(dir);
  }
}
