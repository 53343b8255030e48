import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CIFAR10_STATS, type Dataset, limitTrainingSet, openDataset } from '@lethe/data';
import { initEngine } from '@lethe/engine';
import { ExpertTrainer } from '@lethe/model';
import {
  type AssignExpertsRequest,
  type BackwardRequest,
  decodeFloat32,
  type ForwardRequest,
  type ModelSpec,
  type ObjectRef,
  Split,
  toFloat32Tensor,
  WorkerClient,
  ExpertCopy,
} from '@lethe/proto';
import { callUnary } from '@lethe/rpc';
import { LocalDirStore, sha256Hex } from '@lethe/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningWorker, startWorker } from '../src/worker';
import { quietLogger, workerConfig, writeShapes } from './fixtures';

const MODEL: ModelSpec = {
  preset: 'tiny',
  numClasses: 4,
  inputShape: [32, 32, 3],
  normalisation: { mean: [...CIFAR10_STATS.mean], std: [...CIFAR10_STATS.std] },
  experts: 4,
  seed: 3,
};
const AUGMENT = { crop: 4, flip: true, seed: 11, epoch: 2 };
const INDICES = [0, 5, 7, 31, 12, 3];

let dir: string;
let dataDir: string;
let train: Dataset;
let a: RunningWorker;
let b: RunningWorker;
let clientA: WorkerClient;
let clientB: WorkerClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lethe-worker-'));
  dataDir = writeShapes(join(dir, 'data'), 8, 2);
  train = await openDataset(`cifar10:${dataDir}`, 'train');
  const storeDir = join(dir, 'store');
  // The workers compute in threads of their own; the reference trainers here, on this one.
  await initEngine();
  a = await startWorker(workerConfig({ store: storeDir }), { logger: quietLogger() });
  b = await startWorker(workerConfig({ store: `file:${storeDir}` }), { logger: quietLogger() });
  clientA = new WorkerClient(a.address, grpc.credentials.createInsecure());
  clientB = new WorkerClient(b.address, grpc.credentials.createInsecure());
});

afterAll(async () => {
  clientA?.close();
  clientB?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const assign = (client: WorkerClient, request: Partial<AssignExpertsRequest>) =>
  callUnary(client, client.assignExperts, {
    copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
    model: MODEL,
    experts: [],
    replaceAll: false,
    ...request,
  });
const load = (client: WorkerClient, key: string, uri: string, limit = 0) =>
  callUnary(client, client.loadDataset, {
    key,
    dataset: { source: { $case: 'uri', value: uri }, split: Split.SPLIT_TRAIN, limit },
  });
const forward = (client: WorkerClient, request: Partial<ForwardRequest>) =>
  callUnary(client, client.forward, {
    copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
    stepId: 0,
    expertId: 0,
    datasetKey: 'train',
    indices: INDICES,
    training: false,
    frozenBatchNorm: false,
    ...request,
  });
const gradient = (rows: number, value = 0.1): Float32Array =>
  new Float32Array(rows * MODEL.numClasses).map((_, i) =>
    i % MODEL.numClasses === i % 3 ? value : -value,
  );
const backward = (client: WorkerClient, request: Partial<BackwardRequest>) =>
  callUnary(client, client.backward, {
    stepId: 1,
    expertId: 0,
    logitGradients: toFloat32Tensor(gradient(INDICES.length), [INDICES.length, MODEL.numClasses]),
    learningRate: 0.01,
    weightDecay: 0.0005,
    ...request,
  });
const checkpoint = (client: WorkerClient, expertId: number) =>
  callUnary(client, client.checkpoint, { expertId });

/** Rejects with the given status code (and a message matching `details`, when given). */
async function expectCode(
  call: Promise<unknown>,
  code: grpc.status,
  details?: RegExp,
): Promise<void> {
  const error = (await call.then(
    () => undefined,
    (e: unknown) => e,
  )) as grpc.ServiceError | undefined;
  expect(error, `expected ${grpc.status[code]}`).toBeDefined();
  expect(grpc.status[error!.code], error!.details).toBe(grpc.status[code]);
  if (details) expect(error!.details).toMatch(details);
}

describe('worker: the training cycle', () => {
  let freshSha: string;
  let checkpointRefs: { weights: ObjectRef; optimizerState: ObjectRef };

  it('assigns fresh experts exactly as libs/model initialises them, idempotently', async () => {
    const response = await assign(clientA, {
      experts: [
        { expertId: 0, lastStepId: 0 },
        { expertId: 1, lastStepId: 0 },
      ],
    });
    expect(response.experts.map((e) => e.expertId)).toEqual([0, 1]);
    const reference = new ExpertTrainer(
      { preset: 'tiny', inputShape: [32, 32, 3], numClasses: 4, seed: 3 },
      0,
    );
    freshSha = sha256Hex(reference.serializeWeights());
    expect(response.experts[0]!.weightsSha256).toBe(freshSha);
    expect(response.experts[0]!.parameters).toBe(reference.parameters);
    reference.dispose();
    const again = await assign(clientA, { experts: [{ expertId: 0, lastStepId: 0 }] });
    expect(again.experts).toEqual(response.experts);
  });

  it('loads a dataset once, and a seeded subset with original indices', async () => {
    const loaded = await load(clientA, 'train', `cifar10:${dataDir}`);
    expect(loaded).toMatchObject({
      key: 'train',
      name: 'cifar10',
      samples: 32,
      classes: train.classes,
      imageShape: [32, 32, 3],
    });
    expect(loaded.contentSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await load(clientA, 'train', `cifar10:${dataDir}`)).toEqual(loaded);
    const sub = await load(clientA, 'sub', `cifar10:${dataDir}`, 10);
    expect(sub.samples).toBe(10);
    expect(sub.contentSha256).not.toBe(loaded.contentSha256);
    // Every worker picks the subset `lethe train --limit 10 --seed 0` trains on.
    expect((await load(clientB, 'sub', `cifar10:${dataDir}`, 10)).contentSha256).toBe(
      sub.contentSha256,
    );
    const kept = Array.from(limitTrainingSet(train, 10, 0).indices);
    const outside = Array.from({ length: 32 }, (_, i) => i).find((i) => !kept.includes(i))!;
    await forward(clientA, { datasetKey: 'sub', indices: [kept[3]!] });
    await expectCode(
      forward(clientA, { datasetKey: 'sub', indices: [outside] }),
      grpc.status.NOT_FOUND,
      new RegExp(`${outside}`),
    );
  });

  it('runs a training Forward and Backward; a repeated Backward is already applied', async () => {
    const logits = await forward(clientA, {
      stepId: 1,
      training: true,
      augmentation: AUGMENT,
    });
    expect(logits.logits!.shape).toEqual([INDICES.length, 4]);
    expect(decodeFloat32(logits.logits!.data).every(Number.isFinite)).toBe(true);
    const applied = await backward(clientA, {});
    expect(applied).toMatchObject({ stepId: 1, expertId: 0, alreadyApplied: false });
    expect(applied.gradientNorm).toBeGreaterThan(0);
    const again = await backward(clientA, {});
    expect(again).toMatchObject({ alreadyApplied: true, gradientNorm: 0 });
  });

  it('checkpoints to the store; another worker resumes from it with the same hash', async () => {
    const saved = await checkpoint(clientA, 0);
    expect(saved).toMatchObject({ expertId: 0, lastStepId: 1 });
    expect(saved.weights).toMatchObject({
      kind: 'expert',
      key: `objects/${saved.weights!.sha256}`,
    });
    expect(saved.optimizerState).toMatchObject({ kind: 'optimizer' });
    expect(saved.weights!.sha256).not.toBe(freshSha);
    expect((await checkpoint(clientA, 0)).weights).toEqual(saved.weights);
    checkpointRefs = { weights: saved.weights!, optimizerState: saved.optimizerState! };

    const resumed = await assign(clientB, {
      experts: [{ expertId: 0, ...checkpointRefs, lastStepId: 1 }],
    });
    expect(resumed.experts[0]!.weightsSha256).toBe(saved.weights!.sha256);
    await load(clientB, 'train', `cifar10:${dataDir}`);
    await expectCode(
      forward(clientB, { stepId: 1, training: true }),
      grpc.status.FAILED_PRECONDITION,
      /step_id 1/,
    );
  });

  it('computes the same next step on both workers (weights and optimizer state restored)', async () => {
    const request = { stepId: 2, training: true, augmentation: AUGMENT };
    const [la, lb] = await Promise.all([forward(clientA, request), forward(clientB, request)]);
    expect(decodeFloat32(lb.logits!.data)).toEqual(decodeFloat32(la.logits!.data));
    await Promise.all([backward(clientA, { stepId: 2 }), backward(clientB, { stepId: 2 })]);
    const [ca, cb] = await Promise.all([checkpoint(clientA, 0), checkpoint(clientB, 0)]);
    expect(cb.weights!.sha256).toBe(ca.weights!.sha256);
    expect(cb.optimizerState!.sha256).toBe(ca.optimizerState!.sha256);
    expect(cb.lastStepId).toBe(2);
  });

  it('gives Predict on raw pixels the logits of an inference Forward', async () => {
    const index = 9;
    const bytes = 32 * 32 * 3;
    const image = {
      data: Buffer.from(train.images.subarray(index * bytes, (index + 1) * bytes)),
      height: 32,
      width: 32,
      channels: 3,
    };
    const predicted = await callUnary(clientA, clientA.predict, {
      copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
      expertId: 1,
      images: [image],
    });
    const forwarded = await forward(clientA, { expertId: 1, indices: [index] });
    expect(predicted.logits!.shape).toEqual([1, 4]);
    const p = decodeFloat32(predicted.logits!.data);
    const f = decodeFloat32(forwarded.logits!.data);
    p.forEach((v, i) => expect(v).toBeCloseTo(f[i]!, 5));
  });

  it('leaks no tensors across 20 Forward/Backward steps', async () => {
    await assign(clientA, { experts: [{ expertId: 2, lastStepId: 0 }] });
    let after3 = 0;
    for (let step = 1; step <= 20; step++) {
      await forward(clientA, { expertId: 2, stepId: step, training: true, augmentation: AUGMENT });
      await backward(clientA, { expertId: 2, stepId: step });
      await forward(clientA, { expertId: 2, stepId: step }); // inference too
      // The training copy's engine is its thread's: its count comes with each answer.
      if (step === 3) after3 = a.host.load().tensors;
    }
    expect(after3).toBeGreaterThan(0);
    expect(a.host.load().tensors).toBe(after3);
  });

  it('releases experts and datasets, and what is not held is no error', async () => {
    const released = await callUnary(clientA, clientA.release, {
      copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
      expertIds: [2, 3],
      datasetKeys: ['sub', 'nope'],
      all: false,
    });
    expect(released).toEqual({ releasedExpertIds: [2], releasedDatasetKeys: ['sub'] });
    await expectCode(forward(clientA, { expertId: 2 }), grpc.status.NOT_FOUND);
  });
});

describe('worker: serving copy', () => {
  it('keeps the serving copy apart from the training copy, sharing datasets', async () => {
    const serving = { copy: ExpertCopy.EXPERT_COPY_SERVING };
    await load(clientB, 'shared', `cifar10:${dataDir}`);
    await assign(clientB, { experts: [{ expertId: 2, lastStepId: 0 }], replaceAll: true });
    const trained = await forward(clientB, { expertId: 2, datasetKey: 'shared' });
    // The serving copy holds its own expert 2, which a training step does not touch.
    const tensors = b.host.load().tensors;
    await assign(clientB, { ...serving, experts: [{ expertId: 2, lastStepId: 0 }] });
    const before = await forward(clientB, { ...serving, expertId: 2, datasetKey: 'shared' });
    // ... in an engine (a thread) of its own: a Predict does not wait for a training step.
    await forward(clientB, { expertId: 2, datasetKey: 'shared' });
    expect(b.host.load().tensors).toBe(tensors);
    expect(b.serving.load().tensors).toBeGreaterThan(0);
    await forward(clientB, { expertId: 2, datasetKey: 'shared', stepId: 1, training: true });
    await backward(clientB, { expertId: 2, stepId: 1, learningRate: 0.1 });
    const after = await forward(clientB, { ...serving, expertId: 2, datasetKey: 'shared' });
    const retrained = await forward(clientB, { expertId: 2, datasetKey: 'shared' });
    expect(after.logits!.data).toEqual(before.logits!.data);
    expect(before.logits!.data).toEqual(trained.logits!.data);
    expect(retrained.logits!.data).not.toEqual(trained.logits!.data);
    // Serving is read-only, and releasing it leaves the training copy.
    await expectCode(
      forward(clientB, {
        ...serving,
        expertId: 2,
        datasetKey: 'shared',
        stepId: 2,
        training: true,
      }),
      grpc.status.INVALID_ARGUMENT,
      /serving copy/,
    );
    await callUnary(clientB, clientB.release, {
      ...serving,
      expertIds: [2],
      datasetKeys: [],
      all: false,
    });
    await expectCode(
      forward(clientB, { ...serving, expertId: 2, datasetKey: 'shared' }),
      grpc.status.NOT_FOUND,
    );
    await forward(clientB, { expertId: 2, datasetKey: 'shared' });
  });
});

describe('worker: status codes', () => {
  beforeAll(async () => {
    await assign(clientA, { experts: [{ expertId: 0, lastStepId: 0 }] });
  });

  it('AssignExperts: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, NOT_FOUND, DATA_LOSS', async () => {
    const one = [{ expertId: 0, lastStepId: 0 }];
    await expectCode(
      callUnary(clientA, clientA.assignExperts, {
        copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
        experts: one,
        replaceAll: false,
      }),
      grpc.status.INVALID_ARGUMENT,
      /model/,
    );
    await expectCode(
      assign(clientA, { model: { ...MODEL, preset: 'huge' }, experts: one }),
      grpc.status.INVALID_ARGUMENT,
      /preset/,
    );
    await expectCode(
      assign(clientA, { experts: [...one, ...one] }),
      grpc.status.INVALID_ARGUMENT,
      /duplicate/,
    );
    await expectCode(
      assign(clientA, { experts: [{ expertId: 4, lastStepId: 0 }] }),
      grpc.status.INVALID_ARGUMENT,
      /expert_id 4/,
    );
    await expectCode(
      assign(clientA, { model: { ...MODEL, normalisation: undefined }, experts: one }),
      grpc.status.INVALID_ARGUMENT,
      /normalisation/,
    );
    await expectCode(
      assign(clientA, {
        experts: [0, 1, 2, 3].map((expertId) => ({ expertId, lastStepId: 0 })),
      }),
      grpc.status.RESOURCE_EXHAUSTED,
    );

    const saved = await checkpoint(clientA, 0);
    const missing = {
      ...saved.weights!,
      sha256: 'f'.repeat(64),
      key: `objects/${'f'.repeat(64)}`,
    };
    await expectCode(
      assign(clientB, { experts: [{ expertId: 0, weights: missing, lastStepId: 0 }] }),
      grpc.status.NOT_FOUND,
    );
    // Tamper with the stored weights: the object no longer hashes to the reference.
    const store = new LocalDirStore(join(dir, 'store'));
    const original = await store.get(saved.weights!.key);
    const tampered = Uint8Array.from(original);
    tampered[tampered.length - 1]! ^= 0xff;
    await store.put(saved.weights!.key, tampered);
    try {
      await expectCode(
        assign(clientB, {
          experts: [{ expertId: 0, weights: saved.weights!, lastStepId: 0 }],
        }),
        grpc.status.DATA_LOSS,
      );
    } finally {
      await store.put(saved.weights!.key, original);
    }
  });

  it('LoadDataset: INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED', async () => {
    await expectCode(load(clientA, '', `cifar10:${dataDir}`), grpc.status.INVALID_ARGUMENT, /key/);
    await expectCode(load(clientA, 'x', `mnist:${dataDir}`), grpc.status.INVALID_ARGUMENT);
    await expectCode(
      callUnary(clientA, clientA.loadDataset, { key: 'x' }),
      grpc.status.INVALID_ARGUMENT,
    );
    await expectCode(load(clientA, 'x', `cifar10:${join(dir, 'nope')}`), grpc.status.NOT_FOUND);
    await expectCode(
      load(clientA, 'x', `cifar100:${dataDir}`), // exists, but holds no CIFAR-100 files
      grpc.status.NOT_FOUND,
    );
    await expectCode(
      callUnary(clientA, clientA.loadDataset, {
        key: 'x',
        dataset: {
          source: {
            $case: 'object',
            value: { key: 'objects/x', sha256: '', size: 0, kind: 'dataset' },
          },
          split: Split.SPLIT_TRAIN,
          limit: 0,
        },
      }),
      grpc.status.UNIMPLEMENTED,
    );
  });

  it('Forward: NOT_FOUND for an unknown expert, dataset or index', async () => {
    await expectCode(forward(clientA, { expertId: 3 }), grpc.status.NOT_FOUND, /expert 3/);
    await expectCode(forward(clientA, { datasetKey: 'nope' }), grpc.status.NOT_FOUND, /nope/);
    await expectCode(forward(clientA, { indices: [1, 9999] }), grpc.status.NOT_FOUND, /9999/);
  });

  it('Forward: INVALID_ARGUMENT for no indices or augmentation without training', async () => {
    await expectCode(forward(clientA, { indices: [] }), grpc.status.INVALID_ARGUMENT, /indices/);
    await expectCode(
      forward(clientA, { augmentation: AUGMENT, training: false }),
      grpc.status.INVALID_ARGUMENT,
      /augmentation/,
    );
  });

  it('Forward: FAILED_PRECONDITION for a stale step', async () => {
    await forward(clientA, { stepId: 5, training: true });
    await backward(clientA, { stepId: 5 });
    await expectCode(
      forward(clientA, { stepId: 5, training: true }),
      grpc.status.FAILED_PRECONDITION,
    );
    await expectCode(
      forward(clientA, { stepId: 4, training: true }),
      grpc.status.FAILED_PRECONDITION,
    );
  });

  it('Backward: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION', async () => {
    await forward(clientA, { stepId: 10, training: true });
    await expectCode(
      backward(clientA, {
        stepId: 10,
        logitGradients: toFloat32Tensor(gradient(INDICES.length + 1), [INDICES.length + 1, 4]),
      }),
      grpc.status.INVALID_ARGUMENT,
      /shape/,
    );
    const nan = gradient(INDICES.length);
    nan[3] = Number.NaN;
    await expectCode(
      backward(clientA, { stepId: 10, logitGradients: toFloat32Tensor(nan, [INDICES.length, 4]) }),
      grpc.status.INVALID_ARGUMENT,
      /non-finite/,
    );
    await expectCode(
      backward(clientA, { stepId: 10, learningRate: 0 }),
      grpc.status.INVALID_ARGUMENT,
      /learning_rate/,
    );
    await expectCode(
      backward(clientA, { stepId: 10, learningRate: -1 }),
      grpc.status.INVALID_ARGUMENT,
      /learning_rate/,
    );
    await expectCode(
      backward(clientA, {
        stepId: 10,
        logitGradients: { data: Buffer.alloc(10), shape: [INDICES.length, 4] },
      }),
      grpc.status.INVALID_ARGUMENT,
      /logit_gradients/,
    );
    await expectCode(backward(clientA, { stepId: 10, expertId: 3 }), grpc.status.NOT_FOUND);
    // A Backward for a step whose Forward is not the pending one.
    await expectCode(backward(clientA, { stepId: 11 }), grpc.status.FAILED_PRECONDITION, /redo/);
    // Checkpoint refuses while a training Forward awaits its Backward.
    await expectCode(checkpoint(clientA, 0), grpc.status.FAILED_PRECONDITION, /step 10/);
    await backward(clientA, { stepId: 10 });
    await checkpoint(clientA, 0);
    await expectCode(checkpoint(clientA, 3), grpc.status.NOT_FOUND);
  });

  it('Backward without any Forward (e.g. after a restart): FAILED_PRECONDITION', async () => {
    await assign(clientA, { experts: [{ expertId: 1, lastStepId: 0 }] });
    await expectCode(
      backward(clientA, { stepId: 1, expertId: 1 }),
      grpc.status.FAILED_PRECONDITION,
    );
  });

  it('Predict: INVALID_ARGUMENT for no or wrongly sized images, NOT_FOUND for an unknown expert', async () => {
    const image = { data: Buffer.alloc(32 * 32 * 3), height: 32, width: 32, channels: 3 };
    const predict = (expertId: number, images: (typeof image)[]) =>
      callUnary(clientA, clientA.predict, {
        copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
        expertId,
        images,
      });
    await expectCode(predict(0, []), grpc.status.INVALID_ARGUMENT);
    await expectCode(
      predict(0, [{ ...image, height: 16 }]),
      grpc.status.INVALID_ARGUMENT,
      /16x32x3/,
    );
    await expectCode(
      predict(0, [{ ...image, data: Buffer.alloc(5) }]),
      grpc.status.INVALID_ARGUMENT,
      /bytes/,
    );
    await expectCode(predict(3, [image]), grpc.status.NOT_FOUND);
  });

  it('Release: INVALID_ARGUMENT when nothing is named', async () => {
    await expectCode(
      callUnary(clientA, clientA.release, {
        copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
        expertIds: [],
        datasetKeys: [],
        all: false,
      }),
      grpc.status.INVALID_ARGUMENT,
    );
  });
});
