import 'reflect-metadata';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { INestApplicationContext } from '@nestjs/common';
import {
  type ChannelStats,
  type Dataset,
  limitTrainingSet,
  makeSyntheticDataset,
  writeCifar10,
} from '@lethe/data';
import { initEngine } from '@lethe/engine';
import { erasedOf, excludeErased, isClassReceipt, readLedger, readReceipt } from '@lethe/ledger';
import { loadModel } from '@lethe/model';
import {
  CoordinatorClient,
  type Job,
  StartTrainingRequest,
  SubmitForgetRequest,
  type SubmitForgetResponse,
  TrainingMode,
} from '@lethe/proto';
import { LocalDirStore, ManifestStore } from '@lethe/store';
import {
  loadOutputMemos,
  measureForgetting,
  measureSample,
  modelOutputs,
  OutputMemo,
  outputsKey,
  weightHashes,
} from '@lethe/unlearning';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobRecord } from '../src/contract/job-record';
import { GrpcServerService } from '../src/grpc/grpc-server.service';
import { ModelState } from '../src/model/current-model';
import { jobEnded, type LogLine, startCoordinator, workersJoined } from './support/coordinator-app';
import { unary } from './support/grpc-calls';
import { freePort } from './support/ports';
import { startWorker } from './support/worker-processes';

/**
 * The coordinator's joint training keeps the published weights' outputs on the test split and
 * on the seeded training sample every forget measures, as `lethe train` does: a model trained
 * on two real worker processes, then class forgets through SubmitForget whose "before" finds
 * every output it needs in the store — and equals a measurement that runs the model afresh.
 */

const dir = mkdtempSync(join(tmpdir(), 'lethe-training-memo-'));
const storeDir = join(dir, 'store');
const store = new LocalDirStore(storeDir);
const workers: ChildProcess[] = [];
const lines: LogLine[] = [];
const LIMIT = 40;
const SEED = 3;
let app: INestApplicationContext;
let client: CoordinatorClient;
let data: string;

const spawnWorker = (name: string, port: number): void => {
  workers.push(startWorker({ name, port, storeDir }));
};
const rpc = <Req, Res>(
  method: (r: Req, cb: (e: grpc.ServiceError | null, res: Res) => void) => unknown,
  request: Req,
) => unary<Req, Res>(client, method, request);

const ended = (jobId: string): Promise<JobRecord> => jobEnded(app, jobId);

async function train(requestId: string): Promise<JobRecord> {
  const started = await rpc<StartTrainingRequest, Job>(
    client.startTraining,
    StartTrainingRequest.fromPartial({
      requestId,
      mode: TrainingMode.TRAINING_MODE_JOINT,
      dataset: { source: { $case: 'uri', value: data }, limit: LIMIT },
      preset: 'tiny',
      experts: 3,
      topK: 2,
      epochs: 1,
      batchSize: 16,
      learningRate: 0.003,
      seed: SEED,
    }),
  );
  expect(started.details).toBe('');
  const job = await ended(started.response!.jobId);
  expect(job.error).toBeUndefined();
  expect(job.state).toBe('succeeded');
  return job;
}

async function forgetClass(requestId: string, className: string): Promise<JobRecord> {
  const accepted = await rpc<SubmitForgetRequest, SubmitForgetResponse>(
    client.submitForget,
    SubmitForgetRequest.fromPartial({
      requestId,
      target: { $case: 'className', value: className },
    }),
  );
  expect(accepted.details).toBe('');
  const job = await ended(accepted.response!.job!.jobId);
  expect(job.error).toBeUndefined();
  expect(job.state).toBe('succeeded');
  return job;
}

const jobLines = (jobId: string): string[] =>
  lines.filter((l) => l.jobId === jobId).map((l) => l.msg);

/**
 * The data a forget of the current model runs on, as the forget runner and libs/unlearning
 * make it: the training set limited as trained, less the erasure ledger's entries; the test split.
 */
async function forgetData(): Promise<{ train: Dataset; test: Dataset }> {
  const manifest = (await new ManifestStore(store).read())!;
  const state = new ModelState(store);
  const limited = limitTrainingSet(await state.dataset(data, 'train'), LIMIT, SEED);
  const erased = erasedOf(await readLedger(store, manifest));
  return { train: excludeErased(limited, erased).train, test: await state.dataset(data, 'test') };
}

/** The stored memo of the current weights covers the test split and the seeded sample. */
async function expectMemoOfCurrentModel(): Promise<{ train: Dataset; test: Dataset }> {
  const manifest = (await new ManifestStore(store).read())!;
  const { train, test } = await forgetData();
  const key = outputsKey(weightHashes(manifest), train, test);
  // Only the current weights' memo: the previous ones are pruned.
  expect((await store.list('cache/outputs/')).map((o) => o.key).sort()).toEqual([
    `cache/outputs/${key}/test`,
    `cache/outputs/${key}/train`,
  ]);
  const memos = await loadOutputMemos(store, key, { train, test }, { classes: 3, topK: 2 });
  const all = Int32Array.from({ length: test.size }, (_, i) => i);
  expect(memos.test.missing(test, all)).toEqual(new Int32Array(0));
  expect(memos.test.count()).toBe(test.size);
  const sample = measureSample(train, 0);
  expect(memos.train.missing(train, sample)).toEqual(new Int32Array(0));
  expect(memos.train.count()).toBe(sample.length);

  // What the weights output here, with every expert in this process: the same numbers, to the
  // bit (the router here and the experts on workers normalised with the same float32 stats).
  const { model, card } = await loadModel(store);
  try {
    const normalise = card.normalisation as ChannelStats;
    for (const [ds, memo, positions] of [
      [test, memos.test, all],
      [train, memos.train, sample],
    ] as const) {
      const fresh = OutputMemo.for(ds, 3, 2);
      modelOutputs(model, ds, normalise, { positions, memo: fresh });
      expect(Array.from(memo.chosen)).toEqual(Array.from(fresh.chosen));
      expect(Array.from(memo.probs)).toEqual(Array.from(fresh.probs));
    }
  } finally {
    model.dispose();
  }
  return { train, test };
}

/**
 * A class forget of the current model: its "before" reuses every output it measures, and its
 * metrics are those of a measurement without the memo.
 */
async function expectForgetReusesMemo(requestId: string, classIndex: number): Promise<void> {
  const { train, test } = await forgetData();
  const { model, card } = await loadModel(store);
  let fresh;
  try {
    fresh = measureForgetting(
      model,
      train,
      test,
      classIndex,
      card.normalisation as ChannelStats,
      card.suppressClasses ?? [],
      { mode: 'sample', seed: 0 },
    );
  } finally {
    model.dispose();
  }
  const job = await forgetClass(requestId, train.classes[classIndex]!);
  // Fewer than 5,000 training samples: the sample measurement covers them all.
  const measured = train.size + test.size;
  expect(jobLines(job.id)).toContain(
    `the store held the outputs of ${measured} samples measured earlier on these weights`,
  );
  const receipt = (await readReceipt(store, requestId))!;
  expect(isClassReceipt(receipt)).toBe(true);
  if (!isClassReceipt(receipt)) return;
  expect(receipt.metrics.before.measuredOn).toEqual(fresh.measuredOn);
  expect({ ...receipt.metrics.before, seconds: 0 }).toEqual({ ...fresh, seconds: 0 });
}

beforeAll(async () => {
  // This process measures too (the fresh measurements), as the jobs thread does.
  await initEngine({ engine: 'wasm', log: () => undefined });
  const trainSet = makeSyntheticDataset({ perClass: 16, split: 'train', seed: 5, classes: 3 });
  const testSet = makeSyntheticDataset({ perClass: 4, split: 'test', seed: 5, classes: 3 });
  data = `cifar10:${writeCifar10(dir, { train: trainSet, test: testSet })}`;
  const port = await freePort();
  app = await startCoordinator(
    ['--port', String(port), '--store', storeDir, '--db', join(dir, 'coordinator.sqlite')],
    lines,
  );
  client = new CoordinatorClient(
    app.get(GrpcServerService).address!,
    grpc.credentials.createInsecure(),
  );
  spawnWorker('memo-1', port);
  spawnWorker('memo-2', port);
  await workersJoined(app, 2);
}, 120_000);

afterAll(async () => {
  client?.close();
  await app?.close();
  for (const w of workers) w.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

describe("the coordinator's joint training keeps its outputs for the first forget", () => {
  it('stores the test split and the seeded training sample under the key forgets look up', async () => {
    const job = await train('train-1');
    expect(jobLines(job.id)).toContain(
      'measuring the training sample that forget requests will compare against',
    );
    expect(jobLines(job.id).some((l) => l.startsWith('note: measured outputs not stored'))).toBe(
      false,
    );
    const { train: seen } = await expectMemoOfCurrentModel();
    expect(seen.size).toBe(LIMIT);
  });

  it('serves a class forget\'s whole "before", with the numbers a fresh measurement gives', async () => {
    await expectForgetReusesMemo('forget-1', 1);
  });

  it('follows the erasure ledger: after training again, the sample is of the set a forget sees', async () => {
    await train('train-2');
    const { train: seen } = await expectMemoOfCurrentModel();
    // The class forgotten before is out of the training set, and so out of the sample.
    expect(seen.size).toBeLessThan(LIMIT);
    expect(seen.labels.includes(1)).toBe(false);
    await expectForgetReusesMemo('forget-2', 2);
  });
});
