import {
  type CoordinatorClient,
  type JobEvent,
  JobState,
  StartTrainingRequest,
  SubmitForgetRequest,
  TrainingMode,
} from '@lethe/proto';
import { callUnary } from '@lethe/rpc';
import { getVerified, ManifestStore, type ObjectStore, openObjectStore } from '@lethe/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, S3_ENV, startCluster, waitForJob, waitForWorkers } from '../src/cluster';

/**
 * Faults at seeded points: `kill -9` of a worker or of the coordinator once a job's progress
 * reaches a step drawn from LETHE_FAULT_SEED, during joint training, a class forget and a sisa
 * replay. Then a checker over the store and the API: every accepted forget request ended exactly
 * once (one end in the audit log, a terminal job), and every manifest revision reads and names
 * only objects that match their hashes (an object an erasure deleted may be gone; the current
 * revision's are all there).
 */

const SEED = Number(process.env['LETHE_FAULT_SEED'] ?? 5);
let cluster: Cluster;

/** The n-th draw in [low, high] of a seeded sequence (xorshift). */
function draw(n: number, low: number, high: number): number {
  let x = (SEED * 2_654_435_761 + n * 40_503) >>> 0 || 1;
  for (let i = 0; i < 3; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
  }
  return low + (x % (high - low + 1));
}

beforeAll(async () => {
  cluster = await startCluster(3);
});
afterAll(async () => {
  await cluster?.stop();
});

const training = (requestId: string, mode: TrainingMode, epochs: number) =>
  StartTrainingRequest.fromPartial({
    requestId,
    mode,
    dataset: { source: { $case: 'uri', value: cluster.data } },
    preset: 'tiny',
    experts: 3,
    topK: 2,
    epochs,
    batchSize: 32,
    learningRate: 0.003,
    augment: false,
    ...(mode === TrainingMode.TRAINING_MODE_SISA
      ? { sisa: { shards: 0, slices: 3, routerEpochs: 1 } }
      : {}),
  });

/** Resolves once the job reports progress at or past `step` (or ends before it). */
function progressAt(client: CoordinatorClient, jobId: string, step: number): Promise<void> {
  return new Promise((resolve) => {
    const stream = client.watchJob({ jobId, includeLogs: false });
    const done = (): void => {
      stream.cancel();
      resolve();
    };
    stream.on('data', (event: JobEvent) => {
      if (event.event?.$case === 'progress' && event.event.value.globalStep >= step) done();
    });
    stream.on('end', done);
    stream.on('error', done);
  });
}

async function store(): Promise<ObjectStore> {
  return openObjectStore(cluster.store, S3_ENV);
}

describe(`faults at seeded points (seed ${SEED})`, () => {
  it('finishes joint training when a worker is killed with SIGKILL', async () => {
    const { client } = cluster;
    const job = await callUnary(
      client,
      client.startTraining,
      training('fault-train', TrainingMode.TRAINING_MODE_JOINT, 4),
    );
    await progressAt(client, job.jobId, draw(1, 2, 12));
    cluster.workers.find((w) => w.child.exitCode === null)!.child.kill('SIGKILL');
    expect((await waitForJob(client, job.jobId)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    await cluster.startWorker(`fault-worker-${SEED}-1`);
    await waitForWorkers(client, 3);
  });

  it('completes a class forget once when the coordinator is killed with SIGKILL', async () => {
    const { client } = cluster;
    const submitted = await callUnary(
      client,
      client.submitForget,
      SubmitForgetRequest.fromPartial({
        requestId: 'fault-forget',
        target: { $case: 'className', value: 'disc' },
        epochs: 4,
        batchSize: 32,
        retainFraction: 1,
      }),
    );
    await progressAt(client, submitted.job!.jobId, draw(2, 1, 30));
    await cluster.restartCoordinator('SIGKILL');
    await waitForWorkers(client, 3);
    expect((await waitForJob(client, submitted.job!.jobId)).state).toBe(
      JobState.JOB_STATE_SUCCEEDED,
    );
  });

  it('ends a sisa replay once when a worker is killed with SIGKILL during it', async () => {
    const { client } = cluster;
    const trained = await callUnary(
      client,
      client.startTraining,
      training('fault-sisa', TrainingMode.TRAINING_MODE_SISA, 2),
    );
    expect((await waitForJob(client, trained.jobId)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const submitted = await callUnary(
      client,
      client.submitForget,
      SubmitForgetRequest.fromPartial({
        requestId: 'fault-replay',
        // Samples of a class no case forgot (ring: index % 6 = 5).
        target: { $case: 'sampleIds', value: { ids: ['cifar10:train:5', 'cifar10:train:11'] } },
      }),
    );
    await progressAt(client, submitted.job!.jobId, draw(3, 0, 3));
    cluster.workers.find((w) => w.child.exitCode === null)!.child.kill('SIGKILL');
    const ended = await waitForJob(client, submitted.job!.jobId);
    // A replay that lost a worker fails rather than lose steps; either way it ended, once.
    expect([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED]).toContain(ended.state);
    await cluster.startWorker(`fault-worker-${SEED}-2`);
    await waitForWorkers(client, 3);
  });

  it('leaves every accepted request ended exactly once and every revision verifiable', async () => {
    const { client } = cluster;
    const objects = await store();
    // The audit log: each accepted SubmitForget has exactly one end, matching its job.
    const entries = await Promise.all(
      (await objects.list('audit/')).map(
        async (o) =>
          JSON.parse(Buffer.from(await objects.get(o.key)).toString('utf8')) as {
            action: string;
            requestId: string;
            result: { outcome: string; jobId?: string };
          },
      ),
    );
    const accepted = entries.filter(
      (e) => e.action === 'SubmitForget' && e.result.outcome === 'accepted',
    );
    expect(accepted.map((e) => e.requestId).sort()).toEqual(['fault-forget', 'fault-replay']);
    for (const request of accepted) {
      const ends = entries.filter(
        (e) => e.action === 'ForgetJobFinished' && e.requestId === request.requestId,
      );
      expect(ends, request.requestId).toHaveLength(1);
      const job = await callUnary(client, client.getJob, { jobId: request.result.jobId! });
      expect(ends[0]!.result.outcome).toBe(
        JobState[job.state].replace('JOB_STATE_', '').toLowerCase(),
      );
    }
    // The forget that survived the coordinator's SIGKILL was published by exactly one revision.
    const manifests = new ManifestStore(objects);
    const current = (await manifests.read())!;
    let publishing = 0;
    let previous = false;
    for (let revision = 1; revision <= current.revision; revision++) {
      const manifest = await manifests.readRevision(revision);
      const has = manifest.objects['receipt/fault-forget'] !== undefined;
      if (has && !previous) publishing++;
      previous = has;
      for (const [name, ref] of Object.entries(manifest.objects)) {
        const present = (await objects.head(ref.key)) !== undefined;
        if (revision === current.revision) expect(present, `${revision} ${name}`).toBe(true);
        // Present objects match their hashes: getVerified re-hashes on read.
        if (present) await getVerified(objects, ref);
      }
    }
    expect(publishing).toBe(1);
  });
});
