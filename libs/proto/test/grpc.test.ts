import {
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CoordinatorClient,
  type CoordinatorServer,
  CoordinatorService,
  decodeFloat32,
  encodeFloat32,
  ExpertCopy,
  type ForwardResponse,
  type Job,
  type JobEvent,
  JobKind,
  JobState,
  WorkerClient,
  type WorkerServer,
  WorkerService,
} from '../src/index';

const unimplemented = (
  _call: unknown,
  callback: (error: { code: status; details: string }) => void,
): void => callback({ code: status.UNIMPLEMENTED, details: 'not in this test' });

const running: Job = {
  jobId: 'job-1',
  kind: JobKind.JOB_KIND_TRAINING,
  state: JobState.JOB_STATE_RUNNING,
  mode: 0,
  requestId: '',
  error: '',
  manifestRevision: 0,
};

const coordinator: CoordinatorServer = {
  getJob(call, callback) {
    callback({ code: status.NOT_FOUND, details: `unknown job_id "${call.request.jobId}"` });
  },
  watchJob(call) {
    const { jobId } = call.request;
    const events: JobEvent[] = [
      {
        jobId,
        sequence: 1,
        event: {
          $case: 'status',
          value: { state: JobState.JOB_STATE_RUNNING, previousState: 0, job: running },
        },
      },
      {
        jobId,
        sequence: 2,
        event: {
          $case: 'progress',
          value: {
            phase: 'train',
            epoch: 1,
            epochs: 1,
            step: 10,
            stepsPerEpoch: 10,
            globalStep: 10,
            totalSteps: 10,
            loss: 0.25,
            accuracy: 0.9,
            imagesPerSecond: 1500,
            etaSeconds: 0,
            learningRate: 0.003,
          },
        },
      },
      {
        jobId,
        sequence: 3,
        event: {
          $case: 'status',
          value: {
            state: JobState.JOB_STATE_SUCCEEDED,
            previousState: JobState.JOB_STATE_RUNNING,
            job: { ...running, state: JobState.JOB_STATE_SUCCEEDED, manifestRevision: 1 },
          },
        },
      },
    ];
    for (const event of events) call.write(event);
    call.end();
  },
  startTraining: unimplemented,
  cancelJob: unimplemented,
  submitForget: unimplemented,
  getReceipt: unimplemented,
  listReceipts: unimplemented,
  evaluate: unimplemented,
  predict: unimplemented,
  listExperts: unimplemented,
  listWorkers: unimplemented,
  listSamples: unimplemented,
};

const worker: WorkerServer = {
  forward(call, callback) {
    // Logits of a fake expert with 4 classes: row i is [i, i + 0.5, -i, 1e-3 * i].
    const n = call.request.indices.length;
    const logits = new Float32Array(n * 4);
    call.request.indices.forEach((index, row) =>
      logits.set([index, index + 0.5, -index, 1e-3 * index], row * 4),
    );
    callback(null, {
      stepId: call.request.stepId,
      expertId: call.request.expertId,
      logits: { data: encodeFloat32(logits), shape: [n, 4] },
      computeSeconds: 0,
    });
  },
  assignExperts: unimplemented,
  loadDataset: unimplemented,
  backward: unimplemented,
  predict: unimplemented,
  checkpoint: unimplemented,
  release: unimplemented,
};

let server: Server;
let client: CoordinatorClient;
let workerClient: WorkerClient;

beforeAll(async () => {
  server = new Server();
  server.addService(CoordinatorService, coordinator);
  server.addService(WorkerService, worker);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  client = new CoordinatorClient(`127.0.0.1:${port}`, credentials.createInsecure());
  workerClient = new WorkerClient(`127.0.0.1:${port}`, credentials.createInsecure());
});

afterAll(() => {
  client?.close();
  workerClient?.close();
  server?.forceShutdown();
});

describe('generated services on @grpc/grpc-js', () => {
  it('Coordinator.GetJob reports NOT_FOUND for an unknown job', async () => {
    const error = await new Promise<ServiceError>((resolve, reject) =>
      client.getJob(
        { jobId: 'job-404' },
        new Metadata(),
        { deadline: Date.now() + 5000 },
        (err, job) =>
          err ? resolve(err) : reject(new Error(`expected an error, got ${JSON.stringify(job)}`)),
      ),
    );
    expect(error.code).toBe(status.NOT_FOUND);
    expect(error.details).toBe('unknown job_id "job-404"');
  });

  it('Coordinator.WatchJob streams 3 events, then ends', async () => {
    const stream = client.watchJob({ jobId: 'job-1', includeLogs: false });
    const events: JobEvent[] = [];
    for await (const event of stream) events.push(event as JobEvent);
    expect(events.map((e) => [e.sequence, e.event?.$case])).toEqual([
      [1, 'status'],
      [2, 'progress'],
      [3, 'status'],
    ]);
    const progress = events[1]!.event;
    if (progress?.$case !== 'progress') throw new Error('expected progress');
    expect(progress.value).toMatchObject({ epoch: 1, step: 10, loss: 0.25, imagesPerSecond: 1500 });
    const last = events[2]!.event;
    if (last?.$case !== 'status') throw new Error('expected status');
    expect(last.value.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    expect(last.value.job?.manifestRevision).toBe(1);
  });

  it('Worker.Forward carries packed float32 logits', async () => {
    const response = await new Promise<ForwardResponse>((resolve, reject) =>
      workerClient.forward(
        {
          copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
          stepId: 17,
          expertId: 2,
          datasetKey: 'train',
          indices: [5, 0, 49_999],
          training: true,
          frozenBatchNorm: false,
        },
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
    expect(response.stepId).toBe(17);
    expect(response.logits?.shape).toEqual([3, 4]);
    expect([...decodeFloat32(response.logits!.data)]).toEqual([
      ...new Float32Array([5, 5.5, -5, 0.005, 0, 0.5, -0, 0, 49_999, 49_999.5, -49_999, 49.999]),
    ]);
  });
});
