import * as grpc from '@grpc/grpc-js';
import {
  CoordinatorClient,
  JobState,
  StartTrainingRequest,
  SubmitForgetRequest,
  TrainingMode,
} from '@lethe/proto';
import { callUnary } from '@lethe/rpc';
import { openObjectStore } from '@lethe/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, S3_ENV, startCluster, waitForJob } from '../src/cluster';
import { startService } from '../src/processes';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster(2, { secure: true });
});
afterAll(async () => {
  await cluster?.stop();
});

const code = async (call: Promise<unknown>): Promise<string> => {
  try {
    await call;
    return 'OK';
  } catch (error) {
    return grpc.status[(error as grpc.ServiceError).code]!;
  }
};

const forget = (requestId: string, className: string) =>
  SubmitForgetRequest.fromPartial({
    requestId,
    target: { $case: 'className', value: className },
    epochs: 1,
    learningRate: 1e-3,
    batchSize: 32,
    select: 'top:1',
  });

/** The audit log in the cluster's S3 store. */
async function auditLog(): Promise<
  { action: string; requestId: string; actor: { subject: string }; result: { outcome: string } }[]
> {
  const store = await openObjectStore(cluster.store, S3_ENV);
  const objects = await store.list('audit/');
  return Promise.all(
    objects.map(
      async ({ key }) => JSON.parse(new TextDecoder().decode(await store.get(key))) as never,
    ),
  );
}

describe('a cluster with mutual TLS and API tokens', () => {
  it('trains and forgets with an admin token, and audits the request and its end', async () => {
    const { client } = cluster;
    const job = await callUnary(
      client,
      client.startTraining,
      StartTrainingRequest.fromPartial({
        requestId: 'secure-train',
        mode: TrainingMode.TRAINING_MODE_JOINT,
        dataset: { source: { $case: 'uri', value: cluster.data } },
        preset: 'tiny',
        experts: 2,
        topK: 1,
        epochs: 2,
        batchSize: 32,
        learningRate: 0.003,
        augment: false,
      }),
    );
    expect((await waitForJob(client, job.jobId)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const submitted = await callUnary(client, client.submitForget, forget('secure-disc', 'disc'));
    expect((await waitForJob(client, submitted.job!.jobId)).state).toBe(
      JobState.JOB_STATE_SUCCEEDED,
    );
    const receipt = await callUnary(client, client.getReceipt, { requestId: 'secure-disc' });
    expect(receipt.expertsRetrained).toHaveLength(1);
    const entries = (await auditLog()).filter((e) => e.requestId === 'secure-disc');
    expect(entries.map((e) => [e.action, e.actor.subject, e.result.outcome])).toEqual([
      ['SubmitForget', 'alice', 'accepted'],
      ['ForgetJobFinished', 'alice', 'succeeded'],
    ]);
  });

  it('refuses anonymous callers, viewers that forget, and plaintext', async () => {
    const security = cluster.security!;
    const anonymous = security.connect();
    expect(await code(callUnary(anonymous, anonymous.listWorkers, {}))).toBe('UNAUTHENTICATED');
    const viewer = security.connect(security.viewerToken);
    expect(await code(callUnary(viewer, viewer.listWorkers, {}))).toBe('OK');
    expect(
      await code(callUnary(viewer, viewer.submitForget, forget('viewer-cross', 'cross'))),
    ).toBe('PERMISSION_DENIED');
    const plain = new CoordinatorClient(cluster.address, grpc.credentials.createInsecure());
    expect(await code(callUnary(plain, plain.listWorkers, {}, { deadlineMs: 3_000 }))).toBe(
      'UNAVAILABLE',
    );
    plain.close();
    const refused = (await auditLog()).find((e) => e.requestId === 'viewer-cross');
    expect(refused).toMatchObject({ actor: { subject: 'bob' }, result: { outcome: 'refused' } });
  });

  it('does not let a worker without a certificate register', async () => {
    const intruder = startService(
      'intruder',
      'worker',
      ['--coordinator', cluster.address, '--store', cluster.store, '--name', 'intruder'],
      S3_ENV,
    );
    try {
      await intruder.waitFor('cannot register with coordinator yet; retrying');
      const { client } = cluster;
      const { workers } = await callUnary(client, client.listWorkers, {});
      expect(workers.map((w) => w.address)).not.toContain(
        (await intruder.waitFor('worker listening'))['address'],
      );
      expect(workers).toHaveLength(2);
    } finally {
      await intruder.kill('SIGTERM');
    }
  });
});
