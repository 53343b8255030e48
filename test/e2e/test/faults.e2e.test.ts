import { type AuditEntry, readAuditLog } from '@lethe/ledger';
import { readTrainingRecord } from '@lethe/model';
import {
  type CoordinatorClient,
  type JobEvent,
  JobState,
  StartTrainingRequest,
  SubmitForgetRequest,
  TrainingMode,
} from '@lethe/proto';
import { callUnary } from '@lethe/rpc';
import {
  getVerified,
  type Manifest,
  ManifestStore,
  type ObjectStore,
  openObjectStore,
} from '@lethe/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, S3_ENV, startCluster, waitForJob, waitForWorkers } from '../src/cluster';

/**
 * Faults at seeded points: `kill -9` of a worker or of the coordinator once a job's progress
 * reaches a step drawn from LETHE_FAULT_SEED — a worker during joint training, a class forget and
 * a sisa replay, the coordinator during joint training, a class forget, a sisa training and a sisa
 * replay. A training the coordinator's death interrupted must resume (from its last epoch
 * checkpoint, or its stored slices) rather than start again. Then a checker over the store and
 * the API: every accepted forget request ended exactly once (one end in the audit log, a
 * terminal job), each job that outlived the coordinator's death published exactly one revision,
 * no training checkpoint is left behind, and every manifest revision reads and names only
 * objects that match their hashes (an object an erasure deleted may be gone; the current
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

/** The message of the (current) coordinator's first log line of `jobId` that `match` accepts. */
function coordinatorLine(jobId: string, match: RegExp): string | undefined {
  return cluster.coordinator.lines
    .filter((l) => l['jobId'] === jobId)
    .map((l) => String(l['msg']))
    .find((msg) => match.test(msg));
}

/**
 * Jobs that were running when the coordinator was killed: each must publish exactly once.
 * `published` names what the job published in a revision (its training record's timing, its
 * receipt's hash), or undefined when the revision holds nothing of it: a second publish by a
 * rerun would carry another name.
 */
const outlived: { jobId: string; published: (manifest: Manifest) => string | undefined }[] = [];

const receiptOf = (m: Manifest, requestId: string): string | undefined =>
  m.objects[`receipt/${requestId}`]?.sha256;

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

  it('resumes joint training from its epoch checkpoint when the coordinator is killed with SIGKILL', async () => {
    const { client } = cluster;
    const epochs = 3;
    const job = await callUnary(
      client,
      client.startTraining,
      training('fault-resume', TrainingMode.TRAINING_MODE_JOINT, epochs),
    );
    // 288 images in batches of 32: 9 steps an epoch. Any step of epoch 2 or 3 comes after the
    // checkpoint of epoch 1 is stored.
    await progressAt(client, job.jobId, draw(4, 10, 20));
    await cluster.restartCoordinator('SIGKILL');
    await waitForWorkers(client, 3);
    expect((await waitForJob(client, job.jobId)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    outlived.push({
      jobId: job.jobId,
      published: (m) =>
        training$(m)?.distributed?.job === job.jobId ? String(training$(m)?.seconds) : undefined,
    });
    // Resumed, not restarted: the new coordinator said so and trained only the later epochs.
    const resumed = coordinatorLine(job.jobId, /^resuming from the checkpoint of epoch/);
    expect(resumed).toMatch(new RegExp(`^resuming from the checkpoint of epoch [1-3]/${epochs}`));
    const from = Number(/epoch (\d+)\//.exec(resumed!)![1]);
    expect(coordinatorLine(job.jobId, /^epoch 1\/3:/)).toBeUndefined();
    const current = (await new ManifestStore(await store()).read())!;
    expect(training$(current)?.distributed?.resumedFromEpoch).toBe(from);
    expect(training$(current)?.history).toHaveLength(epochs);
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
    outlived.push({
      jobId: submitted.job!.jobId,
      published: (m) => receiptOf(m, 'fault-forget'),
    });
  });

  it('ends a class forget once when a worker is killed with SIGKILL during it', async () => {
    const { client } = cluster;
    const submitted = await callUnary(
      client,
      client.submitForget,
      SubmitForgetRequest.fromPartial({
        requestId: 'fault-forget-worker',
        target: { $case: 'className', value: 'cross' },
        epochs: 4,
        batchSize: 32,
        retainFraction: 1,
      }),
    );
    await progressAt(client, submitted.job!.jobId, draw(7, 1, 30));
    cluster.workers.find((w) => w.child.exitCode === null)!.child.kill('SIGKILL');
    // The lost worker's experts move to live ones from their checkpoints; if the forget still
    // cannot finish it fails whole. Either way it ended, once (the checker below).
    const ended = await waitForJob(client, submitted.job!.jobId);
    expect([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED]).toContain(ended.state);
    await cluster.startWorker(`fault-worker-${SEED}-3`);
    await waitForWorkers(client, 3);
  });

  it('resumes a sisa training from its stored slices when the coordinator is killed with SIGKILL', async () => {
    const { client } = cluster;
    const trained = await callUnary(
      client,
      client.startTraining,
      training('fault-sisa', TrainingMode.TRAINING_MODE_SISA, 2),
    );
    // 3 shards of 96 images, 3 slices, 2 epochs a slice: 12 steps a shard. Past step 6 some
    // shard has stored its first slice (a shard reports 2 steps before it does).
    await progressAt(client, trained.jobId, draw(5, 7, 24));
    await cluster.restartCoordinator('SIGKILL');
    await waitForWorkers(client, 3);
    expect((await waitForJob(client, trained.jobId)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    outlived.push({
      jobId: trained.jobId,
      // The sisa model as trained, before any replay: its record carries the measured rate.
      published: (m) =>
        training$(m)?.mode === 'sisa' &&
        !receiptOf(m, 'fault-replay') &&
        !receiptOf(m, 'fault-replay-coordinator')
          ? JSON.stringify(training$(m)?.sisa?.rate ?? null)
          : undefined,
    });
    expect(
      coordinatorLine(trained.jobId, /shard slices came from stored checkpoints/),
      'the rerun reused the slices trained before the kill',
    ).toMatch(/^[1-9]\d* of 9 shard slices/);
  });

  it('ends a sisa replay once when a worker is killed with SIGKILL during it', async () => {
    const { client } = cluster;
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

  it('completes a sisa replay once when the coordinator is killed with SIGKILL during it', async () => {
    const { client } = cluster;
    const submitted = await callUnary(
      client,
      client.submitForget,
      SubmitForgetRequest.fromPartial({
        requestId: 'fault-replay-coordinator',
        target: { $case: 'sampleIds', value: { ids: ['cifar10:train:17', 'cifar10:train:23'] } },
      }),
    );
    await progressAt(client, submitted.job!.jobId, draw(6, 0, 3));
    await cluster.restartCoordinator('SIGKILL');
    await waitForWorkers(client, 3);
    expect((await waitForJob(client, submitted.job!.jobId)).state).toBe(
      JobState.JOB_STATE_SUCCEEDED,
    );
    outlived.push({
      jobId: submitted.job!.jobId,
      published: (m) => receiptOf(m, 'fault-replay-coordinator'),
    });
  });

  it('leaves every accepted request ended exactly once and every revision verifiable', async () => {
    const { client } = cluster;
    const objects = await store();
    // The audit log: each accepted SubmitForget has exactly one end, matching its job. A job's
    // end is written just after its state turns terminal (retried until stored), so a client
    // that saw SUCCEEDED may read the log a moment before it: poll for the ends, then count.
    const ends = (log: AuditEntry[], requestId: string): AuditEntry[] =>
      log.filter((e) => e.action === 'ForgetJobFinished' && e.requestId === requestId);
    let entries = await readAuditLog(objects);
    const accepted = entries.filter(
      (e) => e.action === 'SubmitForget' && e.result.outcome === 'accepted',
    );
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      if (accepted.every((a) => ends(entries, a.requestId).length > 0)) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
      entries = await readAuditLog(objects);
    }
    expect(accepted.map((e) => e.requestId).sort()).toEqual([
      'fault-forget',
      'fault-forget-worker',
      'fault-replay',
      'fault-replay-coordinator',
    ]);
    for (const request of accepted) {
      const end = ends(entries, request.requestId);
      expect(end, request.requestId).toHaveLength(1);
      const job = await callUnary(client, client.getJob, { jobId: request.result.jobId! });
      expect(end[0]!.result.outcome).toBe(
        JobState[job.state].replace('JOB_STATE_', '').toLowerCase(),
      );
    }
    // Each job that outlived a coordinator's SIGKILL was published by exactly one revision.
    expect(outlived).toHaveLength(4);
    const manifests = new ManifestStore(objects);
    const current = (await manifests.read())!;
    const publishing = new Map(outlived.map((o) => [o.jobId, new Set<string>()]));
    for (let revision = 1; revision <= current.revision; revision++) {
      const manifest = await manifests.readRevision(revision);
      for (const o of outlived) {
        const name = o.published(manifest);
        if (name !== undefined) publishing.get(o.jobId)!.add(name);
      }
      for (const [name, ref] of Object.entries(manifest.objects)) {
        const present = (await objects.head(ref.key)) !== undefined;
        if (revision === current.revision) expect(present, `${revision} ${name}`).toBe(true);
        // Present objects match their hashes: getVerified re-hashes on read.
        if (present) await getVerified(objects, ref);
      }
    }
    expect(Object.fromEntries([...publishing].map(([id, names]) => [id, names.size]))).toEqual(
      Object.fromEntries(outlived.map((o) => [o.jobId, 1])),
    );
    // Every training published, so none left a checkpoint behind.
    expect(await objects.list('training/checkpoints/')).toEqual([]);
  });
});

const training$ = readTrainingRecord;
