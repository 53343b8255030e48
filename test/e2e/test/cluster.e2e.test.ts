import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  EvaluateRequest,
  ForgetMethod,
  type Job,
  type JobEvent,
  UnlearningLoss,
  ForgetMode,
  JobState,
  MeasureMode,
  PredictRequest,
  Split,
  StartTrainingRequest,
  SubmitForgetRequest,
  TrainingMode,
  WorkerState,
} from '@lethe/proto';
import { callUnary } from '@lethe/rpc';
import { verifyForgetting } from '@lethe/sisa';
import { DEFAULT_FORGET_RECIPE } from '@lethe/unlearning';
import { ManifestStore, openObjectStore } from '@lethe/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Cluster,
  S3_ENV,
  startCluster,
  waitForJob,
  waitForWorkers,
  watchJob,
} from '../src/cluster';
import { REPO } from '../src/processes';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster(3);
});
afterAll(async () => {
  await cluster?.stop();
});

const training = (requestId: string, epochs: number) =>
  StartTrainingRequest.fromPartial({
    requestId,
    mode: TrainingMode.TRAINING_MODE_JOINT,
    dataset: { source: { $case: 'uri', value: cluster.data } },
    preset: 'tiny',
    experts: 4,
    topK: 2,
    epochs,
    batchSize: 32,
    learningRate: 0.003,
    augment: false,
  });

const forget = (requestId: string, className: string, extra: Partial<SubmitForgetRequest> = {}) =>
  SubmitForgetRequest.fromPartial({
    requestId,
    target: { $case: 'className', value: className },
    epochs: 2,
    learningRate: 1e-3,
    batchSize: 32,
    ...extra,
  });

async function manifest() {
  const store = await openObjectStore(cluster.store, S3_ENV);
  return (await new ManifestStore(store).read())!;
}

const code = async (call: Promise<unknown>): Promise<string> => {
  try {
    await call;
    return 'OK';
  } catch (error) {
    return grpc.status[(error as grpc.ServiceError).code]!;
  }
};

describe('a coordinator with 3 worker processes and an S3 store', () => {
  it('trains a tiny MoE jointly across the workers and stores it in S3', async () => {
    const { client } = cluster;
    const job = await callUnary(client, client.startTraining, training('train-1', 3));
    const events = await watchJob(client, job.jobId);
    const done = await waitForJob(client, job.jobId);
    expect(done.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    expect(events.some((e) => e.event?.$case === 'progress')).toBe(true);
    expect(events.at(-1)?.event?.$case).toBe('status');
    const experts = await callUnary(client, client.listExperts, {});
    expect(experts.experts).toHaveLength(4);
    const hosts = new Set(experts.experts.map((e) => e.workerId));
    expect(hosts.size).toBe(3);
    const stored = await manifest();
    for (const e of experts.experts) {
      expect(stored.objects[`expert/${e.expertId}`]!.sha256).toBe(e.checkpoint!.sha256);
    }
    // The same request id with the same request is the same job.
    const again = await callUnary(client, client.startTraining, training('train-1', 3));
    expect(again.jobId).toBe(job.jobId);
  });

  it('forgets a class: only the chosen experts and the router change in the store', async () => {
    const { client } = cluster;
    const before = await manifest();
    // A client's retry racing its original: one job, the second answer a duplicate of it.
    const answers = await Promise.all(
      [0, 1].map(() =>
        callUnary(client, client.submitForget, forget('forget-disc', 'disc', { select: 'top:1' })),
      ),
    );
    expect(answers[0]!.job!.jobId).toBe(answers[1]!.job!.jobId);
    expect(answers.map((a) => a.duplicate).sort()).toEqual([false, true]);
    const submitted = answers.find((a) => !a.duplicate)!;
    // Serving goes on while the job runs, from the published revision.
    const good = { data: Buffer.alloc(32 * 32 * 3, 90), height: 32, width: 32, channels: 3 };
    const served = await callUnary(
      client,
      client.predict,
      PredictRequest.fromPartial({ images: [good] }),
    );
    expect(served.manifestRevision).toBeGreaterThanOrEqual(before.revision);
    expect((await waitForJob(client, submitted.job!.jobId)).state).toBe(
      JobState.JOB_STATE_SUCCEEDED,
    );
    const receipt = await callUnary(client, client.getReceipt, { requestId: 'forget-disc' });
    expect(receipt.expertsRetrained).toHaveLength(1);
    const after = await manifest();
    const changed = Object.keys(after.objects)
      .filter((name) => name === 'router' || name.startsWith('expert/'))
      .filter((name) => after.objects[name]!.sha256 !== before.objects[name]!.sha256)
      .sort();
    expect(changed).toEqual(['router', `expert/${receipt.expertsRetrained[0]}`].sort());
    expect([...receipt.partsChanged].sort()).toEqual(changed);
    expect(receipt.manifest).toEqual({ before: before.revision, after: after.revision });
    expect(after.objects['receipt/forget-disc']!.sha256).toBe(receipt.object!.sha256);
    expect(receipt.metrics!.after!.forgottenClassTestAccuracy).toBeLessThan(
      receipt.metrics!.before!.forgottenClassTestAccuracy + 1e-9,
    );
    // Idempotent: the same request returns the same job; another request under the id is refused.
    const dup = await callUnary(
      client,
      client.submitForget,
      forget('forget-disc', 'disc', { select: 'top:1' }),
    );
    expect(dup).toMatchObject({ duplicate: true, job: { jobId: submitted.job!.jobId } });
    expect(await code(callUnary(client, client.submitForget, forget('forget-disc', 'cross')))).toBe(
      'ALREADY_EXISTS',
    );
  });

  it('answers bad input with the documented status codes', async () => {
    const { client } = cluster;
    expect(await code(callUnary(client, client.submitForget, forget('f-unknown', 'giraffe')))).toBe(
      'NOT_FOUND',
    );
    expect(
      await code(
        callUnary(
          client,
          client.submitForget,
          SubmitForgetRequest.fromPartial({
            requestId: 'f-empty',
            target: { $case: 'sampleIds', value: { ids: [] } },
          }),
        ),
      ),
    ).toBe('INVALID_ARGUMENT');
    expect(await code(callUnary(client, client.submitForget, forget('Bad Id!', 'cross')))).toBe(
      'INVALID_ARGUMENT',
    );
    for (const bad of [
      { learningRate: Number.NaN },
      { retainFraction: Number.NaN },
      { retainFraction: 1.5 },
      { retainFraction: 0.5, method: ForgetMethod.FORGET_METHOD_FINETUNE },
      { loss: 99 as UnlearningLoss },
    ]) {
      expect(
        await code(callUnary(client, client.submitForget, forget('f-bad', 'cross', bad))),
      ).toBe('INVALID_ARGUMENT');
    }
    expect(await code(callUnary(client, client.submitForget, forget('f-again', 'disc')))).toBe(
      'FAILED_PRECONDITION',
    );
    const image = { data: Buffer.alloc(7), height: 32, width: 32, channels: 3 };
    expect(
      await code(
        callUnary(client, client.predict, PredictRequest.fromPartial({ images: [image] })),
      ),
    ).toBe('INVALID_ARGUMENT');
    expect(await code(callUnary(client, client.getJob, { jobId: 'job-999999' }))).toBe('NOT_FOUND');
    expect(await code(callUnary(client, client.getReceipt, { requestId: 'never-sent' }))).toBe(
      'NOT_FOUND',
    );
    // And a good image is classified by router and experts across the workers.
    const good = { data: Buffer.alloc(32 * 32 * 3, 90), height: 32, width: 32, channels: 3 };
    const predicted = await callUnary(
      client,
      client.predict,
      PredictRequest.fromPartial({ images: [good] }),
    );
    expect(predicted.predictions[0]!.experts).toHaveLength(2);
    expect(predicted.predictions[0]!.className).not.toBe('disc');
  });

  it('plans a dry run that changes nothing; a default request gets the library recipe', async () => {
    const { client } = cluster;
    const snapshot = async () => {
      const store = await openObjectStore(cluster.store, S3_ENV);
      return (await store.list('')).map(({ key, sha256 }) => `${key} ${sha256}`);
    };
    const storedBefore = await snapshot();
    const revision = (await manifest()).revision;
    const dry = (requestId: string, className: string, extra: Partial<SubmitForgetRequest> = {}) =>
      callUnary(
        client,
        client.submitForget,
        SubmitForgetRequest.fromPartial({
          requestId,
          target: { $case: 'className', value: className },
          dryRun: true,
          ...extra,
        }),
      );
    const answer = await dry('dry-stripes', 'h-stripes');
    expect(answer.job).toBeUndefined();
    const preview = answer.preview!;
    expect(preview.manifestRevision).toBe(revision);
    const recipe = DEFAULT_FORGET_RECIPE.targeted;
    expect(preview.request).toMatchObject({
      target: { $case: 'classTarget', value: { name: 'h-stripes' } },
      epochs: recipe.epochs,
      retainFraction: recipe.retainFraction,
      anchor: recipe.anchor,
    });
    expect(preview.plan!.experts.length).toBeGreaterThan(0);
    expect(preview.plan!.expertCollateral).toHaveLength(preview.plan!.experts.length);
    expect(preview.estimate!.expertsRetrained).toBe(preview.plan!.experts.length);
    // The same refusals as a real request.
    expect(await code(dry('dry-gone', 'disc'))).toBe('FAILED_PRECONDITION');
    expect(await code(dry('dry-unknown', 'giraffe'))).toBe('NOT_FOUND');
    expect(await code(dry('dry-nan', 'ring', { lambda: Number.NaN }))).toBe('INVALID_ARGUMENT');
    expect(await code(dry('dry-anchor', 'ring', { anchor: -1 }))).toBe('INVALID_ARGUMENT');
    // Nothing stored changed: no job, no audit entry, no revision.
    expect(await snapshot()).toEqual(storedBefore);
    expect((await manifest()).revision).toBe(revision);
    expect(await code(callUnary(client, client.getReceipt, { requestId: 'dry-stripes' }))).toBe(
      'NOT_FOUND',
    );

    // Unset recipe fields: libs/unlearning's default recipe, as the receipt records.
    const submitted = await callUnary(
      client,
      client.submitForget,
      SubmitForgetRequest.fromPartial({
        requestId: 'default-stripes',
        target: { $case: 'className', value: 'h-stripes' },
      }),
    );
    expect((await waitForJob(client, submitted.job!.jobId)).state).toBe(
      JobState.JOB_STATE_SUCCEEDED,
    );
    const receipt = await callUnary(client, client.getReceipt, { requestId: 'default-stripes' });
    expect(receipt.request).toMatchObject({
      method: ForgetMethod.FORGET_METHOD_TARGETED,
      loss: UnlearningLoss.UNLEARNING_LOSS_DISTILL,
      epochs: recipe.epochs,
      learningRate: recipe.learningRate,
      lambda: recipe.lambda,
      retainFraction: recipe.retainFraction,
      anchor: recipe.anchor,
      measure: MeasureMode.MEASURE_MODE_SAMPLE,
      batchSize: DEFAULT_FORGET_RECIPE.batchSize,
    });
    expect(receipt.plan!.experts).toEqual(preview.plan!.experts);
  });

  it('stops an Evaluate whose client cancels it', async () => {
    const { client, coordinator } = cluster;
    // One image per batch over the training split: hundreds of batches, time to cancel in.
    const answered = new Promise<grpc.ServiceError | null>((resolve) => {
      const call = client.evaluate(
        EvaluateRequest.fromPartial({
          dataset: { source: { $case: 'uri', value: cluster.data }, split: Split.SPLIT_TRAIN },
          batchSize: 1,
        }),
        (error) => resolve(error),
      );
      void coordinator.waitFor('evaluate started').then(() => call.cancel());
    });
    expect((await answered)?.code).toBe(grpc.status.CANCELLED);
    // The serving thread stopped its loop, rather than finishing for nobody.
    await coordinator.waitFor('evaluate stopped: its client went');
  });

  it('takes a forget request from the Python client and returns its receipt', async (context) => {
    const python = '/usr/bin/python3';
    const probe = spawnSync(python, ['-c', 'import grpc, grpc_tools'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      context.skip(
        'python3-grpcio / python3-grpc-tools are not installed (apt-get install python3-grpcio python3-grpc-tools)',
      );
    }
    // Asynchronously: this process hosts the S3 server, which must keep answering meanwhile.
    const run = (args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(python, ['-m', 'lethe_client', '--target', cluster.address, ...args], {
          cwd: join(REPO, 'clients', 'python'),
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    const submitted = await run([
      'forget',
      '--class',
      'cross',
      '--request-id',
      'py-cross',
      '--epochs',
      '1',
      '--wait',
      '--json',
    ]);
    expect(submitted.stderr).toBe('');
    expect(submitted.status).toBe(0);
    expect(JSON.parse(submitted.stdout)).toMatchObject({
      job: { state: 'JOB_STATE_SUCCEEDED' },
      receipt_id: 'py-cross',
    });
    const receipt = await run(['receipt', 'py-cross', '--json']);
    expect(receipt.status).toBe(0);
    const body = JSON.parse(receipt.stdout) as {
      request_id: string;
      request: { class_target: { name: string } };
    };
    expect(body).toMatchObject({
      request_id: 'py-cross',
      request: { class_target: { name: 'cross' } },
    });
    const missing = await run(['receipt', 'nope']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/NOT_FOUND/);
    // The model's roster over ListSamples: a kept class whole, the class just forgotten gone
    // (the erasure ledger holds it), and no shards on a joint model.
    const listed = await run(['samples', '--class', 'ring', '--json']);
    expect(listed.stderr).toBe('');
    expect(listed.status).toBe(0);
    const { samples } = JSON.parse(listed.stdout) as {
      samples: { sample_id: string; class_name: string; subject: string }[];
    };
    expect(samples).toHaveLength(48);
    expect(samples.every((s) => s.class_name === 'ring' && s.subject === '')).toBe(true);
    expect(new Set(samples.map((s) => s.sample_id)).size).toBe(48);
    const erased = await run(['samples', '--class', 'cross', '--json']);
    expect(erased.status).toBe(0);
    expect((JSON.parse(erased.stdout) as { samples: unknown[] }).samples).toEqual([]);
    const shard = await run(['samples', '--shard', '0']);
    expect(shard.status).toBe(1);
    expect(shard.stderr).toMatch(/^error: FAILED_PRECONDITION: .*joint\n$/);
  });

  it('finishes a training job when a worker is killed with SIGKILL mid-training', async () => {
    const { client } = cluster;
    const job = await callUnary(client, client.startTraining, training('train-2', 6));
    const victim = cluster.workers[1]!;
    let killed = false;
    const events = await watchJob(client, job.jobId, (event) => {
      if (!killed && event.event?.$case === 'progress' && event.event.value.globalStep >= 10) {
        killed = true;
        victim.child.kill('SIGKILL');
      }
    });
    expect(killed).toBe(true);
    const done = await waitForJob(client, job.jobId);
    expect(done.error).toBe('');
    expect(done.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const warnings = events.filter((e) => e.event?.$case === 'log' && e.event.value.level === 3);
    expect(warnings.length).toBeGreaterThan(0);
    const { workers } = await callUnary(client, client.listWorkers, {});
    expect(workers.find((w) => w.state === WorkerState.WORKER_STATE_LOST)).toBeDefined();
    await cluster.startWorker('worker-4');
    await waitForWorkers(client, 3);
  });

  it('completes a forget request exactly once across a coordinator restart (SIGKILL)', async () => {
    const { client } = cluster;
    const submitted = await callUnary(
      client,
      client.submitForget,
      forget('forget-restart', 'square', { epochs: 6 }),
    );
    await new Promise<void>((resolve, reject) => {
      const stream = client.watchJob({ jobId: submitted.job!.jobId, includeLogs: false });
      stream.on('data', (event: { event?: { $case: string; value: { phase?: string } } }) => {
        if (event.event?.$case === 'progress' && event.event.value.phase === 'forget') {
          stream.cancel();
          resolve();
        }
      });
      stream.on('error', (error: grpc.ServiceError) =>
        error.code === grpc.status.CANCELLED ? resolve() : reject(error),
      );
    });
    const revisionBefore = (await manifest()).revision;
    await cluster.restartCoordinator('SIGKILL');
    await waitForWorkers(client, 3);
    const done = await waitForJob(client, submitted.job!.jobId);
    expect(done.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const after = await manifest();
    expect(after.revision).toBe(revisionBefore + 1);
    // Exactly one revision introduced the receipt: the request was applied once.
    const manifests = new ManifestStore(await openObjectStore(cluster.store, S3_ENV));
    let publishing = 0;
    for (let r = 1; r <= after.revision; r++) {
      const has = async (revision: number) =>
        revision >= 1 &&
        (await manifests.readRevision(revision)).objects['receipt/forget-restart'] !== undefined;
      if ((await has(r)) && !(await has(r - 1))) publishing++;
    }
    expect(publishing).toBe(1);
    const dup = await callUnary(
      client,
      client.submitForget,
      forget('forget-restart', 'square', { epochs: 6 }),
    );
    expect(dup.duplicate).toBe(true);
    expect((await manifest()).revision).toBe(after.revision);
  });

  it('trains a sisa model and forgets samples exactly over gRPC, verifiable from the store', async () => {
    const { client } = cluster;
    const job = await callUnary(
      client,
      client.startTraining,
      StartTrainingRequest.fromPartial({
        requestId: 'train-sisa',
        mode: TrainingMode.TRAINING_MODE_SISA,
        dataset: { source: { $case: 'uri', value: cluster.data } },
        preset: 'tiny',
        experts: 3,
        epochs: 1,
        batchSize: 32,
        learningRate: 0.003,
        sisa: { shards: 0, slices: 2, routerEpochs: 1 },
      }),
    );
    expect(job.mode).toBe(TrainingMode.TRAINING_MODE_SISA);
    const trainingEvents = await watchJob(client, job.jobId);
    expect((await waitForJob(client, job.jobId)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    // Every shard trained, slice by slice (on the worker hosting it: training-runner's sisa path).
    const shardSteps = trainingEvents.filter(
      (e) => e.event?.$case === 'progress' && e.event.value.phase === 'train-shard',
    );
    expect(
      new Set(shardSteps.map((e) => e.event?.$case === 'progress' && e.event.value.shard)),
    ).toEqual(new Set([0, 1, 2]));
    // top_k unset: every image mixes all three shard models, hosted on both workers.
    const image = { data: Buffer.alloc(32 * 32 * 3, 90), height: 32, width: 32, channels: 3 };
    const [mixed] = (
      await callUnary(client, client.predict, PredictRequest.fromPartial({ images: [image] }))
    ).predictions;
    expect([...mixed!.experts].sort()).toEqual([0, 1, 2]);
    expect(mixed!.gates.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    // A method made for joint models does not apply; an unknown sample is NOT_FOUND.
    expect(
      await code(
        callUnary(
          client,
          client.submitForget,
          forget('f-class', 'cross', { method: ForgetMethod.FORGET_METHOD_TARGETED }),
        ),
      ),
    ).toBe('FAILED_PRECONDITION');
    const samples = (ids: string[]) =>
      SubmitForgetRequest.fromPartial({
        requestId: 'erase-two',
        target: { $case: 'sampleIds', value: { ids } },
      });
    expect(
      await code(callUnary(client, client.submitForget, samples(['cifar10:train:99999']))),
    ).toBe('NOT_FOUND');
    const submitted = await callUnary(
      client,
      client.submitForget,
      samples(['cifar10:train:5', 'cifar10:train:17']),
    );
    expect((await waitForJob(client, submitted.job!.jobId)).state).toBe(
      JobState.JOB_STATE_SUCCEEDED,
    );
    const receipt = await callUnary(client, client.getReceipt, { requestId: 'erase-two' });
    expect(receipt.mode).toBe(ForgetMode.FORGET_MODE_EXACT);
    expect(receipt.sisa!.shards.length).toBeGreaterThan(0);
    const store = await openObjectStore(cluster.store, S3_ENV);
    const verdict = await verifyForgetting(store, 'erase-two');
    expect(verdict.problems).toEqual([]);
    // Requests queued behind a running replay are batched into the next one: 3 requests, 2 revisions.
    const before = (await manifest()).revision;
    const jobs = [];
    // Samples of a class no earlier test forgot (ring: index % 6 = 5): the erasure ledger keeps
    // forgotten classes out of every later training, this sisa model's included.
    for (const [i, id] of ['cifar10:train:65', 'cifar10:train:71', 'cifar10:train:77'].entries()) {
      const r = await callUnary(
        client,
        client.submitForget,
        SubmitForgetRequest.fromPartial({
          requestId: `erase-batch-${i}`,
          target: { $case: 'sampleIds', value: { ids: [id] } },
        }),
      );
      jobs.push(r.job!.jobId);
    }
    for (const id of jobs) {
      expect((await waitForJob(client, id)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    }
    const batched = await Promise.all(
      [1, 2].map((i) => callUnary(client, client.getReceipt, { requestId: `erase-batch-${i}` })),
    );
    expect(batched[0]!.manifest!.after).toBe(batched[1]!.manifest!.after);
    expect((await manifest()).revision).toBe(before + 2);

    // A whole class on a sisa model: exactly, as the set of its 48 training samples.
    const byClass = await callUnary(client, client.submitForget, forget('sisa-class', 'v-stripes'));
    expect((await waitForJob(client, byClass.job!.jobId)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const classReceipt = await callUnary(client, client.getReceipt, { requestId: 'sisa-class' });
    expect(classReceipt.mode).toBe(ForgetMode.FORGET_MODE_EXACT);
    expect(classReceipt.request!.target).toMatchObject({ $case: 'sampleIds' });
    const ids =
      classReceipt.request!.target?.$case === 'sampleIds'
        ? classReceipt.request!.target.value.ids
        : [];
    expect(ids).toHaveLength(48);
    expect((await verifyForgetting(store, 'sisa-class')).ok).toBe(true);
  });

  it('answers CancelJob on a running job with CANCELLING, then ends it CANCELLED', async () => {
    const { client } = cluster;
    const revision = (await manifest()).revision;
    const job = await callUnary(client, client.startTraining, training('train-cancel', 50));
    let answer: Promise<Job> | undefined;
    const events = await watchJob(client, job.jobId, (event) => {
      if (!answer && event.event?.$case === 'progress') {
        answer = callUnary(client, client.cancelJob, { jobId: job.jobId });
      }
    });
    expect((await answer!).state).toBe(JobState.JOB_STATE_CANCELLING);
    const last = events.at(-1)!.event;
    expect(last?.$case === 'status' && last.value.state).toBe(JobState.JOB_STATE_CANCELLED);
    expect((await callUnary(client, client.getJob, { jobId: job.jobId })).state).toBe(
      JobState.JOB_STATE_CANCELLED,
    );
    expect((await manifest()).revision).toBe(revision);
  });

  it('drains on SIGTERM: watch streams end UNAVAILABLE and the process exits 0', async () => {
    const { client } = cluster;
    const job = await callUnary(client, client.startTraining, training('train-term', 50));
    const stream = client.watchJob({ jobId: job.jobId, includeLogs: false });
    const ended = new Promise<number>((resolve) => {
      stream.on('error', (error: grpc.ServiceError) => resolve(error.code));
      stream.on('end', () => resolve(grpc.status.OK));
    });
    await new Promise<void>((resolve) =>
      stream.on('data', (event: JobEvent) => {
        if (event.event?.$case === 'progress') resolve();
      }),
    );
    const stopped = cluster.coordinator;
    await cluster.restartCoordinator('SIGTERM');
    expect(await stopped.exited).toBe(0);
    expect(await ended).toBe(grpc.status.UNAVAILABLE);
    expect(stopped.lines.map((l) => l['msg'])).toContain('coordinator stopped');
    await waitForWorkers(client, 3);
    // Training interrupted by a stop is queued again and runs on under the same job id (from
    // its last epoch checkpoint; this one stopped before its first). Cancel it to end the case.
    for (let running = false; !running; await new Promise((r) => setTimeout(r, 100))) {
      const state = (await callUnary(client, client.getJob, { jobId: job.jobId })).state;
      expect([JobState.JOB_STATE_QUEUED, JobState.JOB_STATE_RUNNING]).toContain(state);
      running = state === JobState.JOB_STATE_RUNNING;
    }
    await callUnary(client, client.cancelJob, { jobId: job.jobId });
    expect((await waitForJob(client, job.jobId)).state).toBe(JobState.JOB_STATE_CANCELLED);
  });
});
