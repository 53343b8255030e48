import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type sendUnaryData,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import {
  type CoordinatorServer,
  CoordinatorService,
  type EvaluateRequest,
  type ListSamplesRequest,
  EvaluateResponse,
  ExpertInfo,
  ExpertStatus,
  ForgetMethod,
  ForgetMode,
  Job,
  type JobEvent,
  JobKind,
  JobProgress,
  JobState,
  LearningRateSchedule,
  LogLevel,
  MeasureMode,
  Receipt,
  Split,
  type StartTrainingRequest,
  type SubmitForgetRequest,
  TrainingMode,
  UnlearningLoss,
  WorkerInfo,
  WorkerState,
} from '@lethe/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_FILE } from '../src/cluster/cluster-file';
import { forgetRequest, newRequestId, trainingRequest } from '../src/remote/remote-jobs';
import { letheAsync } from './cli-async';

// ---------------------------------------------------------------------------------------------
// A fake coordinator with canned answers

const CLASSES = ['square', 'disc', 'cross', 'h-stripes'];
const seen = {
  startTraining: [] as StartTrainingRequest[],
  submitForget: [] as SubmitForgetRequest[],
  evaluate: [] as EvaluateRequest[],
  listSamples: [] as ListSamplesRequest[],
};
const fail = (code: status, details: string): { code: status; details: string } => ({
  code,
  details,
});

const job = (jobId: string, state: JobState, extra: Partial<Job> = {}): Job =>
  Job.fromPartial({
    jobId,
    kind: jobId === 'job-2' ? JobKind.JOB_KIND_FORGET : JobKind.JOB_KIND_TRAINING,
    state,
    mode: TrainingMode.TRAINING_MODE_JOINT,
    createdAt: new Date('2025-01-01T00:00:00Z'),
    ...extra,
  });

const progress = (phase: string, epoch: number, epochs: number, step: number, steps: number) =>
  JobProgress.fromPartial({
    phase,
    epoch,
    epochs,
    step,
    stepsPerEpoch: steps,
    globalStep: (epoch - 1) * steps + step,
    totalSteps: epochs * steps,
    loss: 1 / (epoch * step),
    accuracy: 0.25 * epoch,
    imagesPerSecond: 1234,
    learningRate: 0.01,
  });

function receipt(requestId: string, className = 'cross'): Receipt {
  const metrics = (after: boolean) => ({
    ua: after ? 99.5 : 2.5,
    ra: after ? 91.25 : 93,
    ta: after ? 88 : 90,
    forgottenClassTestAccuracy: after ? 0 : 95,
    testAccuracy: after ? 66 : 91,
    perClassTest: [],
    miaEfficacy: after ? 97 : 10,
    miaAttackAccuracy: 50,
    featureProbe: after ? 12 : 96,
    seconds: 1,
    unmaskedUa: after ? 99.5 : 2.5,
    unmaskedForgottenClassTestAccuracy: after ? 0 : 95,
    unmaskedMiaEfficacy: after ? 97 : 10,
  });
  return Receipt.fromPartial({
    schema: 1,
    requestId,
    createdAt: new Date('2025-01-02T03:04:05Z'),
    request: {
      target: {
        $case: 'classTarget',
        value: { index: CLASSES.indexOf(className), name: className },
      },
      method: ForgetMethod.FORGET_METHOD_TARGETED,
      loss: UnlearningLoss.UNLEARNING_LOSS_COMPLEMENT_CE,
      epochs: 5,
      learningRate: 1e-4,
      lambda: 1,
      select: 'coverage:0.8',
      batchSize: 128,
    },
    mode: ForgetMode.FORGET_MODE_APPROXIMATE,
    plan: {
      classIndex: 2,
      className,
      samples: 40,
      activations: [5, 60, 15],
      rule: 'coverage:0.8',
      experts: [1, 2],
      coverage: 0.9375,
    },
    expertsRetrained: [1, 2],
    partsChanged: ['router', 'expert/1', 'expert/2'],
    manifest: { before: 1, after: 2 },
    metrics: { before: metrics(false), after: metrics(true) },
    timings: { planSeconds: 0.5, forgetSeconds: 3.25, measureSeconds: 1, totalSeconds: 5 },
    engine: 'wasm',
    jobId: 'job-2',
  });
}
const RECEIPTS = [receipt('r-1', 'disc'), receipt('r-2', 'square'), receipt('r-3')];

function watch(
  call: ServerWritableStream<{ jobId: string; includeLogs: boolean }, JobEvent>,
): void {
  const { jobId, includeLogs } = call.request;
  let sequence = 0;
  const send = (event: JobEvent['event']): void => {
    call.write({ jobId, sequence: ++sequence, time: new Date(), event });
  };
  const changed = (state: JobState, previous: JobState, extra: Partial<Job> = {}): void =>
    send({
      $case: 'status',
      value: { state, previousState: previous, job: job(jobId, state, extra) },
    });
  const { JOB_STATE_RUNNING: RUNNING, JOB_STATE_SUCCEEDED: SUCCEEDED } = JobState;
  if (jobId === 'job-1') {
    changed(RUNNING, JobState.JOB_STATE_UNSPECIFIED);
    for (let epoch = 1; epoch <= 2; epoch++) {
      for (let step = 1; step <= 3; step++) {
        send({ $case: 'progress', value: progress('train', epoch, 2, step, 3) });
      }
    }
    changed(SUCCEEDED, RUNNING, { manifestRevision: 1, progress: progress('train', 2, 2, 3, 3) });
  } else if (jobId === 'job-2') {
    changed(JobState.JOB_STATE_QUEUED, JobState.JOB_STATE_UNSPECIFIED);
    changed(RUNNING, JobState.JOB_STATE_QUEUED);
    send({ $case: 'progress', value: progress('plan', 1, 1, 0, 0) });
    send({ $case: 'progress', value: progress('forget', 1, 1, 2, 2) });
    // A coordinator streams its job's log lines only to a watcher that asks for them.
    if (includeLogs) {
      send({
        $case: 'log',
        value: {
          level: LogLevel.LOG_LEVEL_WARN,
          source: 'coordinator',
          text: 'warning: the weights still recognise cross in 12.0% of its test images',
        },
      });
    }
    changed(SUCCEEDED, RUNNING, { manifestRevision: 2 });
  } else if (jobId === 'job-fail') {
    changed(RUNNING, JobState.JOB_STATE_UNSPECIFIED);
    changed(JobState.JOB_STATE_FAILED, RUNNING, { error: 'worker worker-2 lost' });
  } else {
    call.destroy(Object.assign(new Error(`unknown job_id "${jobId}"`), { code: status.NOT_FOUND }));
    return;
  }
  call.end();
}

const unimplemented = (_call: unknown, callback: sendUnaryData<never>): void =>
  callback(fail(status.UNIMPLEMENTED, 'not in the fake'));

const coordinator: CoordinatorServer = {
  startTraining(call, callback) {
    seen.startTraining.push(call.request);
    const uri =
      call.request.dataset?.source?.$case === 'uri' ? call.request.dataset.source.value : '';
    if (uri.includes('missing')) {
      callback(fail(status.NOT_FOUND, `dataset directory ${uri.split(':')[1]} does not exist`));
    } else if (uri.includes('fail')) {
      callback(null, job('job-fail', JobState.JOB_STATE_QUEUED));
    } else {
      callback(null, job('job-1', JobState.JOB_STATE_QUEUED));
    }
  },
  watchJob: watch,
  getJob(call, callback) {
    const { jobId } = call.request;
    if (jobId === 'job-1') {
      callback(null, job('job-1', JobState.JOB_STATE_SUCCEEDED, { manifestRevision: 1 }));
    } else if (jobId === 'job-2') {
      callback(
        null,
        job('job-2', JobState.JOB_STATE_RUNNING, {
          requestId: 'cli-1',
          progress: progress('forget', 1, 5, 7, 10),
        }),
      );
    } else callback(fail(status.NOT_FOUND, `unknown job_id "${jobId}"`));
  },
  submitForget(call, callback) {
    const request = call.request;
    seen.submitForget.push(request);
    if (request.target?.$case === 'className' && !CLASSES.includes(request.target.value)) {
      callback(
        fail(
          status.NOT_FOUND,
          `unknown class name "${request.target.value}" (classes: ${CLASSES.join(', ')})`,
        ),
      );
      return;
    }
    if (request.dryRun && request.target?.$case === 'subjectIds') {
      // A joint model's subject: the plan from the routing lineage.
      callback(null, {
        receiptId: '',
        duplicate: false,
        preview: {
          request: {
            target: { $case: 'sampleIds', value: { ids: ['cifar10:train:4', 'cifar10:train:9'] } },
            subjects: request.target.value.ids,
            method: request.method,
            loss: UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED,
            epochs: request.epochs || 2,
            learningRate: 3e-4,
            lambda: 1,
            select: '',
            maskOutput: false,
            batchSize: 128,
            seed: 0,
            retainFraction: 0.2,
            measure: MeasureMode.MEASURE_MODE_SAMPLE,
          },
          plan: {
            className: '',
            samples: 2,
            activations: [],
            rule: '',
            experts: [0, 2],
            coverage: 1,
            expertCollateral: [],
            collateral: 41.5,
            retainedRouted: 60,
            seenBy: [2, 0, 1],
            lineageEpochs: 3,
          },
          estimate: {
            trainingSamples: 22,
            epochs: 3,
            expertsRetrained: 2,
            expertSampleWork: 132,
            measuredSamples: 300,
            measuredBeforeReused: 100,
            trainingRate: 100,
            seconds: { retraining: 1, measurement: 4, total: 5 },
          },
          manifestRevision: 4,
        },
      });
      return;
    }
    if (request.dryRun) {
      callback(null, {
        receiptId: '',
        duplicate: false,
        preview: {
          request: {
            target: { $case: 'classTarget', value: { index: 2, name: 'cross' } },
            method: ForgetMethod.FORGET_METHOD_TARGETED,
            loss: UnlearningLoss.UNLEARNING_LOSS_DISTILL,
            epochs: 2,
            learningRate: 3e-4,
            lambda: 3,
            select: 'coverage:0.8',
            maskOutput: false,
            batchSize: 128,
            seed: 0,
            retainFraction: 0.1,
            anchor: request.anchor ?? 1,
            measure: request.measure,
            subjects: [],
          },
          plan: {
            classIndex: 2,
            className: 'cross',
            samples: 40,
            activations: [30, 45, 5],
            rule: 'coverage:0.8',
            experts: [1, 0],
            coverage: 0.94,
            expertCollateral: [12.5, 7.25],
            collateral: 19.75,
            retainedRouted: 80,
            seenBy: [],
            lineageEpochs: 0,
          },
          estimate: {
            trainingSamples: 56,
            epochs: 2,
            expertsRetrained: 2,
            expertSampleWork: 112,
            measuredSamples: 300,
            measuredBeforeReused: 100,
            trainingRate: 100,
            seconds: { retraining: 1.2, measurement: 6, total: 7.2 },
          },
          manifestRevision: 3,
        },
      });
      return;
    }
    callback(null, {
      job: job('job-2', JobState.JOB_STATE_QUEUED, { requestId: request.requestId }),
      receiptId: request.requestId,
      duplicate: request.requestId === 'dup-1',
    });
  },
  getReceipt(call, callback) {
    const { requestId } = call.request;
    const known = RECEIPTS.find((r) => r.requestId === requestId);
    const submitted = seen.submitForget.find((r) => r.requestId === requestId);
    if (known) callback(null, known);
    else if (submitted) {
      const target = submitted.target;
      callback(
        null,
        receipt(
          requestId,
          target?.$case === 'className'
            ? target.value
            : target?.$case === 'classIndex'
              ? CLASSES[target.value]
              : 'cross',
        ),
      );
    } else callback(fail(status.NOT_FOUND, `no completed forget request "${requestId}"`));
  },
  listReceipts(call, callback) {
    // Two per page whatever the page size, so the client has to follow next_page_token.
    const start = call.request.pageToken === '' ? 0 : Number(call.request.pageToken.slice(1));
    if (Number.isNaN(start)) {
      callback(fail(status.INVALID_ARGUMENT, `bad page_token "${call.request.pageToken}"`));
      return;
    }
    const end = Math.min(start + 2, RECEIPTS.length);
    callback(null, {
      receipts: RECEIPTS.slice(start, end),
      nextPageToken: end < RECEIPTS.length ? `p${end}` : '',
      totalSize: RECEIPTS.length,
    });
  },
  evaluate(call, callback) {
    seen.evaluate.push(call.request);
    callback(
      null,
      EvaluateResponse.fromPartial({
        manifestRevision: 2,
        samples: 40,
        correct: 30,
        accuracy: 0.75,
        perClass: CLASSES.map((className, classIndex) => ({
          classIndex,
          className,
          samples: 10,
          correct: classIndex === 2 ? 0 : 10,
          accuracy: classIndex === 2 ? 0 : 1,
        })),
        routing: { rows: 4, cols: 3, counts: [10, 10, 0, 0, 20, 0, 5, 5, 10, 20, 0, 0] },
        confusion: { rows: 4, cols: 4, counts: new Array<number>(16).fill(0) },
        seconds: 1.5,
      }),
    );
  },
  listWorkers(_call, callback) {
    callback(null, {
      workers: [1, 2].map((i) =>
        WorkerInfo.fromPartial({
          workerId: `worker-${i}`,
          address: `127.0.0.1:4000${i}`,
          device: { engine: 'wasm' },
          capacity: { maxExperts: 2 },
          state: i === 1 ? WorkerState.WORKER_STATE_ALIVE : WorkerState.WORKER_STATE_SUSPECT,
          expertIds: i === 1 ? [0, 1] : [2],
          load: { busyFraction: 0.5 },
          lastHeartbeat: new Date(),
        }),
      ),
    });
  },
  listExperts(_call, callback) {
    callback(null, {
      manifestRevision: 2,
      experts: [0, 1, 2].map((expertId) =>
        ExpertInfo.fromPartial({
          expertId,
          workerId: expertId < 2 ? 'worker-1' : 'worker-2',
          status: ExpertStatus.EXPERT_STATUS_READY,
          checkpoint: { sha256: `${expertId}`.repeat(64), key: 'objects/x', kind: 'expert' },
          parameters: 12345,
        }),
      ),
    });
  },
  cancelJob: unimplemented,
  predict: unimplemented,
  listSamples(call, callback) {
    seen.listSamples.push(call.request);
    const selector = call.request.selector;
    if (selector?.$case === 'subject' && selector.value !== 'alice') {
      callback(fail(status.NOT_FOUND, `unknown subject "${selector.value}"`));
      return;
    }
    callback(null, {
      manifestRevision: 4,
      samples: [
        { sampleId: 'cifar10:train:3', className: 'cross', subject: 'alice' },
        { sampleId: 'cifar10:train:9', className: 'disc', subject: '' },
      ],
    });
  },
};

// ---------------------------------------------------------------------------------------------

const server = new Server();
let address = '';
const work = mkdtempSync(join(tmpdir(), 'lethe-remote-'));

beforeAll(async () => {
  server.addService(CoordinatorService, coordinator);
  const port = await new Promise<number>((done, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : done(bound),
    ),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  await new Promise<void>((done) => server.tryShutdown(() => done()));
  rmSync(work, { recursive: true, force: true });
});

/** A fresh working directory per test, without LETHE_COORDINATOR from the environment. */
function cwd(): string {
  return mkdtempSync(join(work, 'cwd-'));
}
const noEnv = { LETHE_COORDINATOR: undefined };
const run = (args: string[], dir = cwd(), env: Record<string, string | undefined> = noEnv) =>
  letheAsync(args, { cwd: dir, env });

/** stderr holds exactly one line, the error, and no stack trace. */
function expectOneLineError(stderr: string, message: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('requests built from flags', () => {
  it('maps lethe train flags to StartTrainingRequest', () => {
    const request = trainingRequest({
      data: 'cifar10:/d',
      preset: 'tiny',
      experts: 3,
      topK: 2,
      epochs: 2,
      batch: 16,
      lr: 0.01,
      weightDecay: 0,
      schedule: 'cosine',
      seed: 7,
      augment: false,
      balance: 0,
      routerNoise: 0,
      limit: 100,
      json: false,
    });
    expect(request).toMatchObject({
      mode: TrainingMode.TRAINING_MODE_JOINT,
      dataset: {
        source: { $case: 'uri', value: 'cifar10:/d' },
        split: Split.SPLIT_TRAIN,
        limit: 100,
      },
      schedule: LearningRateSchedule.LEARNING_RATE_SCHEDULE_COSINE,
      // zero values of `optional` fields are sent, not mistaken for "use the default"
      weightDecay: 0,
      balanceWeight: 0,
      routerNoise: 0,
      augment: false,
      subjects: '',
    });
    // The subject table's path goes as given: the coordinator reads it, like the dataset.
    expect(
      trainingRequest({
        data: 'cifar10:/d',
        preset: 'tiny',
        experts: 2,
        topK: 1,
        epochs: 1,
        batch: 16,
        lr: 0.01,
        weightDecay: 0,
        schedule: 'cosine',
        seed: 7,
        augment: false,
        balance: 0,
        routerNoise: 0,
        limit: 100,
        json: false,
        subjects: '/coordinator/side/subjects.csv',
      }).subjects,
    ).toBe('/coordinator/side/subjects.csv');
  });

  it('maps a class name, a class index and sample ids to the target', () => {
    const base = { epochs: 5, lr: 1e-4, lambda: 1, maskOutput: false, batch: 128, seed: 0 };
    const flags = { ...base, requestId: 'r', json: false };
    expect(forgetRequest({ ...flags, class: 'cat' }).target).toEqual({
      $case: 'className',
      value: 'cat',
    });
    expect(forgetRequest({ ...flags, class: '3' }).target).toEqual({
      $case: 'classIndex',
      value: 3,
    });
    expect(forgetRequest({ ...flags, samples: ['c:train:1'] }).target).toEqual({
      $case: 'sampleIds',
      value: { ids: ['c:train:1'] },
    });
    expect(forgetRequest({ ...flags, class: 'x' }).method).toBe(
      ForgetMethod.FORGET_METHOD_UNSPECIFIED,
    );
    expect(newRequestId(new Date('2025-03-04T05:06:07.890Z'))).toMatch(
      /^forget-20250304t050607-[a-z0-9]{1,6}$/,
    );
  });
});

describe('lethe train --coordinator', () => {
  it('starts training, shows progress until the job succeeds, and maps the flags', async () => {
    const dir = cwd();
    const result = await run(
      [
        'train',
        '--coordinator',
        address,
        '--data',
        'cifar10:/data/c10',
        '--preset',
        'tiny',
        '--experts',
        '3',
        '--epochs',
        '2',
        '--batch',
        '16',
        '--lr',
        '0.01',
        '--schedule',
        'cosine',
        '--limit',
        '100',
        '--no-augment',
        '--store',
        '/ignored',
        '--request-id',
        'train-1',
        '--specialize',
        '2',
      ],
      dir,
    );
    expect(result.stderr).toMatch(/warning: --store is ignored with a coordinator/);
    expect(result.stderr).toMatch(/training job job-1 on 127\.0\.0\.1:\d+: QUEUED/);
    expect(result.stderr).toMatch(/job job-1: RUNNING/);
    expect(result.stderr).toMatch(/train epoch 2\/2 step 6\/6 loss 0\.167 acc 50\.0% 1234 img\/s/);
    expect(result.stderr).toMatch(/job job-1: SUCCEEDED/);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /^trained: job job-1 succeeded, manifest revision 1; epoch 2\/2, train loss 0\.167, train accuracy 50\.0%/,
    );
    expect(seen.startTraining.at(-1)).toMatchObject({
      requestId: 'train-1',
      mode: TrainingMode.TRAINING_MODE_JOINT,
      dataset: {
        source: { $case: 'uri', value: 'cifar10:/data/c10' },
        split: Split.SPLIT_TRAIN,
        limit: 100,
      },
      preset: 'tiny',
      experts: 3,
      topK: 0, // no --top-k: the coordinator's default (2; sisa: every expert)
      epochs: 2,
      batchSize: 16,
      learningRate: 0.01,
      weightDecay: 0.0005,
      schedule: LearningRateSchedule.LEARNING_RATE_SCHEDULE_COSINE,
      seed: 0,
      balanceWeight: 0.1,
      routerNoise: 0.5,
      specializeWeight: 2,
      augment: false,
    });
    const jobs = JSON.parse(readFileSync(join(dir, '.lethe', 'jobs.json'), 'utf8')) as unknown[];
    expect(jobs).toMatchObject([{ jobId: 'job-1', coordinator: address }]);
  });

  it('trains a sisa model on the coordinator, refusing the sisa flags the API does not carry', async () => {
    const args = ['train', '--coordinator', address, '--data', 'cifar10:/d', '--mode', 'sisa'];
    const result = await run([...args, '--slices', '3', '--router-epochs', '2', '--json'], cwd());
    expect(result.status, result.stderr).toBe(0);
    expect(seen.startTraining.at(-1)).toMatchObject({
      mode: TrainingMode.TRAINING_MODE_SISA,
      sisa: { shards: 0, slices: 3, routerEpochs: 2 },
    });
    const sent = seen.startTraining.length;
    const refused = await run([...args, '--assignment', 'class-balanced'], cwd());
    expect(refused.status).toBe(1);
    expectOneLineError(refused.stderr, /--assignment: not in the Coordinator API/);
    expect(seen.startTraining).toHaveLength(sent);
  });

  it('prints the final Job as JSON with --json, with LETHE_COORDINATOR instead of the flag', async () => {
    const result = await run(['train', '--data', 'cifar10:/d', '--json'], cwd(), {
      LETHE_COORDINATOR: address,
    });
    expect(result.status, result.stderr).toBe(0);
    const json = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(json).toMatchObject({
      jobId: 'job-1',
      kind: 'JOB_KIND_TRAINING',
      state: 'JOB_STATE_SUCCEEDED',
      mode: 'TRAINING_MODE_JOINT',
      manifestRevision: 1,
      progress: { phase: 'train', epoch: 2, totalSteps: 6 },
    });
  });

  it('fails with the job error when the job fails', async () => {
    const result = await run(['train', '--coordinator', address, '--data', 'cifar10:/fail']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/\nlethe: error: job job-fail FAILED: worker worker-2 lost\n$/);
  });

  it('reports a gRPC error in one line with its status name', async () => {
    const result = await run(['train', '--coordinator', address, '--data', 'cifar10:/missing']);
    expect(result.status).toBe(1);
    expectOneLineError(
      result.stderr,
      /^lethe: error: NOT_FOUND: dataset directory \/missing does not exist$/,
    );
  });

  it('reports an unreachable coordinator in one line', async () => {
    const result = await run(['train', '--coordinator', '127.0.0.1:1', '--data', 'cifar10:/d']);
    expect(result.status).toBe(1);
    expectOneLineError(
      result.stderr,
      /^lethe: error: UNAVAILABLE: .*\(coordinator 127\.0\.0\.1:1\)$/,
    );
  });
});

describe('lethe forget --coordinator', () => {
  it('submits a class by name, follows the job and prints the receipt table', async () => {
    const result = await run([
      'forget',
      '--coordinator',
      address,
      '--class',
      'cross',
      '--request-id',
      'cli-1',
      '--select',
      'top:2',
      '--retain-fraction',
      '0.25',
    ]);
    expect(result.stderr).toMatch(/forget request cli-1: job job-2 on 127\.0\.0\.1:\d+, QUEUED\n/);
    expect(result.stderr).toMatch(/plan…\n/);
    expect(result.stderr).toMatch(/forget epoch 1\/1 step 2\/2/);
    expect(result.stderr).toMatch(
      /\ncoordinator: warning: the weights still recognise cross in 12\.0% of its test images\n/,
    );
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /^forgot class cross \(targeted, approximate\) — request cli-1\n/,
    );
    expect(result.stdout).toMatch(
      /plan: activations per expert e0=5 e1=60 e2=15; rule coverage:0\.8 → experts 1, 2 \(coverage 93\.8%\)/,
    );
    expect(result.stdout).toMatch(/changed: router, expert\/1, expert\/2/);
    expect(result.stdout).toMatch(
      /before +2\.50 +93\.00 +90\.00 +95\.00 +10\.00 +96\.00 +2\.50 +95\.00 +10\.00\n/,
    );
    expect(result.stdout).toMatch(
      /after +99\.50 +91\.25 +88\.00 +0\.00 +97\.00 +12\.00 +99\.50 +0\.00 +97\.00\n/,
    );
    expect(result.stdout).toMatch(/receipt stored; manifest revision 1 → 2 \(job job-2\)/);
    expect(seen.submitForget.at(-1)).toEqual({
      requestId: 'cli-1',
      target: { $case: 'className', value: 'cross' },
      method: ForgetMethod.FORGET_METHOD_UNSPECIFIED,
      loss: UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED,
      // Unset: the coordinator applies the library's default recipe.
      epochs: 0,
      learningRate: 0,
      lambda: 0,
      select: 'top:2',
      maskOutput: false,
      batchSize: 128,
      seed: 0,
      retainFraction: 0.25,
      measure: MeasureMode.MEASURE_MODE_UNSPECIFIED,
      dryRun: false,
    });
  });

  it('submits a class by index with method options and prints the Receipt as JSON', async () => {
    const result = await run([
      'forget',
      '--coordinator',
      address,
      '--class',
      '1',
      '--method',
      'targeted',
      '--loss',
      'random-label',
      '--epochs',
      '3',
      '--lr',
      '0.001',
      '--lambda',
      '2',
      '--batch',
      '32',
      '--seed',
      '9',
      '--request-id',
      'cli-2',
      '--json',
    ]);
    expect(result.status).toBe(0);
    expect(seen.submitForget.at(-1)).toMatchObject({
      requestId: 'cli-2',
      target: { $case: 'classIndex', value: 1 },
      method: ForgetMethod.FORGET_METHOD_TARGETED,
      loss: UnlearningLoss.UNLEARNING_LOSS_RANDOM_LABEL,
      epochs: 3,
      learningRate: 0.001,
      lambda: 2,
      batchSize: 32,
      seed: 9,
    });
    const json = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(json).toMatchObject({
      requestId: 'cli-2',
      mode: 'FORGET_MODE_APPROXIMATE',
      request: { classTarget: { index: 1, name: 'disc' }, method: 'FORGET_METHOD_TARGETED' },
      partsChanged: ['router', 'expert/1', 'expert/2'],
      manifest: { before: 1, after: 2 },
    });
  });

  it('forgets data subjects through the coordinator, which expands them', async () => {
    const result = await run(
      ['forget', '--coordinator', address, '--subject', 's7, s8,s7', '--request-id', 'erase-s7'],
      cwd(),
    );
    expect(result.status).toBe(0);
    const request = seen.submitForget.at(-1)!;
    expect(request.target).toEqual({ $case: 'subjectIds', value: { ids: ['s7', 's8'] } });
    expect(request.requestId).toBe('erase-s7');
  });

  it('forgets samples from --samples and --samples-file, with a generated request id', async () => {
    const dir = cwd();
    writeFileSync(join(dir, 'ids.txt'), 'cifar10:train:7\ncifar10:train:8, cifar10:train:9\n\n');
    const result = await run(
      [
        'forget',
        '--coordinator',
        address,
        '--samples',
        'cifar10:train:1,cifar10:train:2',
        '--samples-file',
        'ids.txt',
        '--method',
        'sisa-replay',
      ],
      dir,
    );
    expect(result.status).toBe(0);
    const request = seen.submitForget.at(-1)!;
    expect(request.target).toEqual({
      $case: 'sampleIds',
      value: {
        ids: [
          'cifar10:train:1',
          'cifar10:train:2',
          'cifar10:train:7',
          'cifar10:train:8',
          'cifar10:train:9',
        ],
      },
    });
    expect(request.method).toBe(ForgetMethod.FORGET_METHOD_SISA_REPLAY);
    expect(request.requestId).toMatch(/^forget-\d{8}t\d{6}-[a-z0-9]+$/);
    expect(result.stderr).toContain(`request id ${request.requestId}\n`);
  });

  it('plans a dry run with --anchor and --measure and prints it like a local one', async () => {
    const result = await run([
      'forget',
      '--coordinator',
      address,
      '--class',
      'cross',
      '--request-id',
      'dry-1',
      '--dry-run',
      '--anchor',
      '0.5',
      '--measure',
      'full',
    ]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /^dry run: forgetting class cross \(targeted\) on manifest revision 3 would retrain experts e1, e0 \+ router \(coverage:0\.8, coverage 94\.0%\)/,
    );
    expect(result.stdout).toMatch(/e1 +45 +12\.5%/);
    expect(result.stdout).toMatch(/together +19\.8%/);
    expect(result.stdout).toMatch(/estimate: about 7 s \(retraining 1 s, measurement 6 s\)/);
    expect(result.stdout).toMatch(
      /measurement 300 samples after, 200 before \(the store holds the rest\)/,
    );
    expect(result.stdout).toMatch(/nothing was changed/);
    expect(seen.submitForget.at(-1)).toMatchObject({
      requestId: 'dry-1',
      dryRun: true,
      anchor: 0.5,
      measure: MeasureMode.MEASURE_MODE_FULL,
    });
  });

  it('plans a subject of a joint model with a sample method and prints it like a local one', async () => {
    const result = await run([
      'forget',
      '--coordinator',
      address,
      '--subject',
      's4',
      '--method',
      'scrub',
      '--epochs',
      '3',
      '--request-id',
      'dry-s4',
      '--dry-run',
    ]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(seen.submitForget.at(-1)).toMatchObject({
      requestId: 'dry-s4',
      target: { $case: 'subjectIds', value: { ids: ['s4'] } },
      method: ForgetMethod.FORGET_METHOD_SCRUB,
      epochs: 3,
      dryRun: true,
    });
    expect(result.stdout).toMatch(
      /^dry run: forgetting 2 samples \(scrub\) on manifest revision 4 would retrain experts e0, e2 \+ router/,
    );
    expect(result.stdout).toMatch(
      /41\.5% of the retained samples' routing \(60 samples; last of 3 recorded epochs\)/,
    );
    expect(result.stdout).toMatch(/nothing was changed/);
  });

  it('says when a request id was submitted before', async () => {
    const result = await run([
      'forget',
      '--coordinator',
      address,
      '--class',
      'disc',
      '--request-id',
      'dup-1',
    ]);
    expect(result.status).toBe(0);
    expect(result.stderr).toMatch(/\(submitted before: following the original job\)/);
  });

  it('reports an unknown class as NOT_FOUND in one line', async () => {
    const result = await run([
      'forget',
      '--coordinator',
      address,
      '--class',
      'unicorn',
      '--request-id',
      'x-1',
    ]);
    expect(result.status).toBe(1);
    expectOneLineError(
      result.stderr,
      /^lethe: error: NOT_FOUND: unknown class name "unicorn" \(classes: square, disc, cross, h-stripes\)$/,
    );
  });

  it.each([
    [
      ['forget', '--coordinator', 'nohost', '--class', 'a'],
      /invalid --coordinator "nohost": expected HOST:PORT/,
    ],
    [
      ['forget', '--samples', 'a:train:1', '--store', '/nonexistent/lethe-store'],
      /no trained model in local-dir:\/nonexistent\/lethe-store/,
    ],
    [['forget', '--class', 'a', '--samples', 'a:train:1'], /either --class or --samples/],
    [
      ['forget', '--class', 'a', '--method', 'sisa-replay', '--data', 'cifar10:/x'],
      /either --class or --samples|sisa-replay needs --samples/,
    ],
    [['forget', '--class', 'a'], /required option '--data <spec>' not specified/],
    [
      ['forget', '--coordinator', 'x:1', '--samples-file', 'nope.txt'],
      /cannot read --samples-file nope\.txt: ENOENT/,
    ],
    [
      ['eval', '--ignore-output-mask', '--data', 'cifar10:/x'],
      /--ignore-output-mask needs --coordinator/,
    ],
    [['train', '--data', 'cifar10:/x', '--request-id', 'a'], /--request-id needs --coordinator/],
  ])('rejects bad remote flags in one line: %j', async (args, message) => {
    const result = await run(args);
    expect(result.status).toBe(1);
    expectOneLineError(result.stderr, message);
  });
});

describe('lethe eval --coordinator', () => {
  it('evaluates the current model and prints accuracy and routing', async () => {
    const result = await run(['eval', '--coordinator', address]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^accuracy 75\.00% on 40 images \(manifest revision 2, 1\.5 s\)/);
    expect(result.stdout).toMatch(/square +100\.0% +10 +50% +50% +0%/);
    expect(result.stdout).toMatch(/cross +0\.0% +10 +25% +25% +50%/);
    expect(seen.evaluate.at(-1)).toEqual({ batchSize: 256, ignoreOutputMask: false });
  });

  it('passes a dataset and split, and prints EvaluateResponse JSON', async () => {
    const result = await run([
      'eval',
      '--coordinator',
      address,
      '--data',
      'cifar10:/d',
      '--split',
      'train',
      '--ignore-output-mask',
      '--json',
    ]);
    expect(result.status).toBe(0);
    expect(seen.evaluate.at(-1)).toMatchObject({
      dataset: { source: { $case: 'uri', value: 'cifar10:/d' }, split: Split.SPLIT_TRAIN },
      ignoreOutputMask: true,
    });
    const json = JSON.parse(result.stdout) as { accuracy: number; perClass: unknown[] };
    expect(json.accuracy).toBe(0.75);
    expect(json.perClass).toHaveLength(4);
  });
});

describe('lethe status', () => {
  it('finds the cluster through .lethe/cluster.json and shows workers, experts and jobs', async () => {
    const dir = cwd();
    mkdirSync(join(dir, '.lethe'));
    writeFileSync(
      join(dir, CLUSTER_FILE),
      JSON.stringify({
        coordinator: address,
        pid: process.pid,
        workers: [],
        store: '/s',
        logs: '/l',
      }),
    );
    writeFileSync(
      join(dir, '.lethe', 'jobs.json'),
      JSON.stringify([
        { jobId: 'job-1', coordinator: address, submittedAt: '' },
        { jobId: 'job-gone', coordinator: address, submittedAt: '' },
        { jobId: 'job-2', coordinator: address, submittedAt: '' },
        { jobId: 'job-9', coordinator: '10.0.0.1:7070', submittedAt: '' },
      ]),
    );
    const result = await run(['status'], dir);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`coordinator ${address} (from .lethe/cluster.json)`);
    expect(result.stdout).toMatch(/model: manifest revision 2, 3 experts/);
    expect(result.stdout).toMatch(/workers: 1 alive of 2/);
    expect(result.stdout).toMatch(
      /worker-1 +127\.0\.0\.1:40001 +alive +wasm +0,1 +2 +50% +\d+ s ago/,
    );
    expect(result.stdout).toMatch(/worker-2 +127\.0\.0\.1:40002 +suspect/);
    expect(result.stdout).toMatch(/e2 +ready +worker-2 +222222222222 +12345/);
    expect(result.stdout).toMatch(/job-2 +forget +RUNNING +cli-1 .* forget epoch 1\/5 step 7\/10/);
    expect(result.stdout).toMatch(/job-1 +training +SUCCEEDED .* manifest revision 1/);
    expect(result.stdout).not.toMatch(/job-gone|job-9/);

    const json = await run(['status', '--json'], dir);
    expect(json.status).toBe(0);
    const parsed = JSON.parse(json.stdout) as {
      coordinator: string;
      workers: { workers: { workerId: string; state: string }[] };
      experts: { manifestRevision: number };
      jobs: { jobId: string }[];
    };
    expect(parsed.coordinator).toBe(address);
    expect(parsed.workers.workers[1]).toMatchObject({
      workerId: 'worker-2',
      state: 'WORKER_STATE_SUSPECT',
    });
    expect(parsed.experts.manifestRevision).toBe(2);
    expect(parsed.jobs.map((j) => j.jobId)).toEqual(['job-2', 'job-1']);
  });

  it('prefers --coordinator, and fails clearly without any coordinator', async () => {
    const flag = await run(['status', '--coordinator', address]);
    expect(flag.status).toBe(0);
    expect(flag.stdout).toMatch(new RegExp(`^coordinator ${address}\\n`));
    expect(flag.stdout).toMatch(/jobs: none started from this directory/);

    const none = await run(['status']);
    expect(none.status).toBe(1);
    expectOneLineError(none.stderr, /^lethe: error: no coordinator: pass --coordinator HOST:PORT/);
  });

  it('says so when cluster.json names a lethe up that has exited', async () => {
    const dir = cwd();
    mkdirSync(join(dir, '.lethe'));
    writeFileSync(
      join(dir, CLUSTER_FILE),
      JSON.stringify({ coordinator: address, pid: 2 ** 22 + 12345, workers: [] }),
    );
    const result = await run(['status'], dir);
    expect(result.status).toBe(1);
    expectOneLineError(result.stderr, /^lethe: error: no running cluster: .* has exited/);
  });
});

describe('lethe receipts --coordinator', () => {
  it('lists every page of receipts', async () => {
    const result = await run(['receipts', '--coordinator', address]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /r-1 +2025-01-02T03:04:05\.000Z +class disc +targeted +1,2 +0\.00/,
    );
    expect(result.stdout).toMatch(/r-3 .* class cross/);

    const json = await run(['receipts', '--coordinator', address, '--json']);
    const parsed = JSON.parse(json.stdout) as {
      receipts: { requestId: string }[];
      totalSize: number;
    };
    expect(parsed.totalSize).toBe(3);
    expect(parsed.receipts.map((r) => r.requestId)).toEqual(['r-1', 'r-2', 'r-3']);
  });

  it('shows one receipt, or NOT_FOUND in one line', async () => {
    const shown = await run(['receipts', '--coordinator', address, '--request-id', 'r-2']);
    expect(shown.status).toBe(0);
    expect(shown.stdout).toMatch(/^forgot class square \(targeted, approximate\) — request r-2/);

    const missing = await run(['receipts', '--coordinator', address, '--request-id', 'nope']);
    expect(missing.status).toBe(1);
    expectOneLineError(
      missing.stderr,
      /^lethe: error: NOT_FOUND: no completed forget request "nope"$/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// A coordinator with TLS and tokens

describe('lethe samples --coordinator', () => {
  it("lists a subject's samples as the local command does, and NOT_FOUND in one line", async () => {
    const listed = await run(['samples', '--coordinator', address, '--subject', 'alice']);
    expect(listed.status).toBe(0);
    expect(listed.stdout).toMatch(/cifar10:train:3 +cross +alice/);
    expect(listed.stdout).toMatch(/cifar10:train:9 +disc +—/);
    expect(seen.listSamples.at(-1)?.selector).toEqual({ $case: 'subject', value: 'alice' });

    const json = await run(['samples', '--coordinator', address, '--class', 'cross', '--json']);
    expect(JSON.parse(json.stdout)).toEqual([
      { sampleId: 'cifar10:train:3', class: 'cross', subject: 'alice' },
      { sampleId: 'cifar10:train:9', class: 'disc', subject: null },
    ]);
    expect(seen.listSamples.at(-1)?.selector).toEqual({ $case: 'className', value: 'cross' });

    const missing = await run(['samples', '--coordinator', address, '--subject', 'bob']);
    expect(missing.status).toBe(1);
    expectOneLineError(missing.stderr, /NOT_FOUND: unknown subject "bob"/);
  });
});

describe('connecting securely: --token / LETHE_TOKEN, --tls-ca, --tls-cert', () => {
  const tls = join(work, 'tls');
  const TOKEN = 'lethe_secret-token-for-the-cli-test';
  const servers: Server[] = [];
  /** Who each secure fake saw calling ListWorkers: the bearer token or the certificate's CN. */
  const callers: string[] = [];
  let tokenAddress = '';
  let certificateAddress = '';

  const listing = (caller: (call: ServerUnaryCall<unknown, unknown>) => string | undefined) =>
    ({
      listWorkers(call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) {
        const who = caller(call);
        if (who === undefined) {
          callback(fail(status.UNAUTHENTICATED, 'credentials required'));
          return;
        }
        callers.push(who);
        callback(null, { workers: [] });
      },
      listExperts(_call: unknown, callback: sendUnaryData<unknown>) {
        callback(null, { manifestRevision: 0, experts: [] });
      },
    }) as UntypedServiceImplementation;

  const bind = async (server: Server, credentials: ServerCredentials): Promise<string> => {
    servers.push(server);
    const port = await new Promise<number>((done, reject) =>
      server.bindAsync('127.0.0.1:0', credentials, (error, bound) =>
        error ? reject(error) : done(bound),
      ),
    );
    return `127.0.0.1:${port}`;
  };

  beforeAll(async () => {
    execFileSync(
      'bash',
      [resolve(__dirname, '../../../scripts/dev-ca.sh'), '--out', tls, '--client', 'alice'],
      { stdio: 'ignore' },
    );
    const pem = (name: string): Buffer => readFileSync(join(tls, name));
    const pair = [{ cert_chain: pem('coordinator.pem'), private_key: pem('coordinator-key.pem') }];
    const tokenServer = new Server();
    tokenServer.addService(
      CoordinatorService,
      listing((call) => {
        const [value] = call.metadata.get('authorization');
        return value === `Bearer ${TOKEN}` ? `token ${TOKEN}` : undefined;
      }),
    );
    tokenAddress = await bind(tokenServer, ServerCredentials.createSsl(pem('ca.pem'), pair));
    const certificateServer = new Server();
    certificateServer.addService(
      CoordinatorService,
      listing((call) => {
        const subject = call.getAuthContext().sslPeerCertificate?.subject as
          Record<string, string> | undefined;
        return subject?.['CN'] === undefined ? undefined : `CN ${subject['CN']}`;
      }),
    );
    certificateAddress = await bind(
      certificateServer,
      ServerCredentials.createSsl(pem('ca.pem'), pair, true),
    );
  });
  afterAll(async () => {
    await Promise.all(
      servers.map((server) => new Promise<void>((done) => server.tryShutdown(() => done()))),
    );
  });

  it('sends the token from LETHE_TOKEN over TLS verified with --tls-ca', async () => {
    callers.length = 0;
    const result = await run(
      ['status', '--coordinator', tokenAddress, '--tls-ca', join(tls, 'ca.pem')],
      cwd(),
      { ...noEnv, LETHE_TOKEN: TOKEN },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/workers: 0 alive of 0/);
    expect(callers).toEqual([`token ${TOKEN}`]);
    // --token and LETHE_TLS_CA work as well.
    const flags = await run(['status', '--coordinator', tokenAddress, '--token', TOKEN], cwd(), {
      ...noEnv,
      LETHE_TLS_CA: join(tls, 'ca.pem'),
    });
    expect(flags.status).toBe(0);
  });

  it('fails in one line without a token, without TLS, or without trusting the server', async () => {
    const anonymous = await run(
      ['status', '--coordinator', tokenAddress, '--tls-ca', join(tls, 'ca.pem')],
      cwd(),
      { ...noEnv, LETHE_TOKEN: undefined },
    );
    expect(anonymous.status).toBe(1);
    expectOneLineError(
      anonymous.stderr,
      /^lethe: error: UNAUTHENTICATED: credentials required \(pass --token or set LETHE_TOKEN/,
    );
    const plaintext = await run(['status', '--coordinator', tokenAddress, '--token', TOKEN]);
    expect(plaintext.status).toBe(1);
    expectOneLineError(plaintext.stderr, /^lethe: error: UNAVAILABLE: .*\(coordinator /);
    const untrusted = await run([
      'status',
      '--coordinator',
      tokenAddress,
      '--tls',
      '--token',
      TOKEN,
    ]);
    expect(untrusted.status).toBe(1);
    expectOneLineError(untrusted.stderr, /^lethe: error: UNAVAILABLE: /);
  });

  it('presents a client certificate with --tls-cert and --tls-key', async () => {
    callers.length = 0;
    const result = await run([
      'status',
      '--coordinator',
      certificateAddress,
      '--tls-ca',
      join(tls, 'ca.pem'),
      '--tls-cert',
      join(tls, 'alice.pem'),
      '--tls-key',
      join(tls, 'alice-key.pem'),
    ]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(callers).toEqual(['CN alice']);
    const half = await run([
      'status',
      '--coordinator',
      certificateAddress,
      '--tls-cert',
      join(tls, 'alice.pem'),
    ]);
    expect(half.status).toBe(1);
    expectOneLineError(half.stderr, /^lethe: error: --tls-cert needs --tls-key too$/);
    const missing = await run(['status', '--coordinator', certificateAddress, '--tls-ca', '/nope']);
    expectOneLineError(missing.stderr, /^lethe: error: cannot read --tls-ca \/nope: ENOENT$/);
  });
});

describe('lethe audit', () => {
  it("lists the coordinator's audit entries from its store, oldest first", async () => {
    const dir = cwd();
    const audit = join(dir, 'store', 'audit');
    mkdirSync(audit, { recursive: true });
    const entry = (id: string, requestId: string, extra: Record<string, unknown>) =>
      writeFileSync(
        join(audit, `${id}.json`),
        JSON.stringify({
          schema: 1,
          id,
          time: '2025-01-02T03:04:05.678Z',
          action: 'SubmitForget',
          actor: { subject: 'alice', role: 'admin', via: 'token' },
          requestId,
          target: { className: 'cross' },
          method: 'targeted',
          ...extra,
        }),
      );
    entry('2025-01-02t03-04-05-678z-0000-aa', 'f-1', {
      result: { outcome: 'accepted', status: 'OK', jobId: 'job-000001' },
    });
    entry('2025-01-02t03-04-06-000z-0000-bb', 'f-2', {
      actor: { subject: 'bob', role: 'viewer', via: 'token' },
      result: { outcome: 'refused', status: 'PERMISSION_DENIED', message: 'needs role admin' },
    });
    entry('2025-01-02t03-05-00-000z-0000-cc', 'f-1', {
      action: 'ForgetJobFinished',
      result: { outcome: 'succeeded', jobId: 'job-000001', manifestRevision: 3 },
    });
    const shown = await run(['audit', '--store', join(dir, 'store')], dir);
    expect(shown.status).toBe(0);
    const lines = shown.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[2]).toMatch(/alice \(admin\) +SubmitForget +f-1 +class cross +targeted +accepted/);
    expect(lines[3]).toMatch(/bob \(viewer\) .* refused PERMISSION_DENIED .* needs role admin/);
    expect(lines[4]).toMatch(/ForgetJobFinished +f-1 .* succeeded +job-000001 +revision 3/);
    const json = await run([
      'audit',
      '--store',
      join(dir, 'store'),
      '--request-id',
      'f-1',
      '--json',
    ]);
    expect(json.status).toBe(0);
    const parsed = JSON.parse(json.stdout) as { action: string }[];
    expect(parsed.map((e) => e.action)).toEqual(['SubmitForget', 'ForgetJobFinished']);
  });
});
