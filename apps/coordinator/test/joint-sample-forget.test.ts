import 'reflect-metadata';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { INestApplicationContext } from '@nestjs/common';
import { formatSampleId, makeSyntheticDataset, writeCifar10 } from '@lethe/data';
import { erasedOf, readAuditLog, readLedger, readRoster } from '@lethe/ledger';
import {
  CoordinatorClient,
  ForgetMethod,
  ForgetMode,
  type GetReceiptRequest,
  type Job,
  type Receipt,
  StartTrainingRequest,
  SubmitForgetRequest,
  type SubmitForgetResponse,
  TrainingMode,
} from '@lethe/proto';
import { LocalDirStore, ManifestStore, sha256Hex } from '@lethe/store';
import { DEFAULT_SAMPLE_FORGET_RECIPE } from '@lethe/unlearning';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ForgetJobRequest } from '../src/contract/forget-request';
import { GrpcServerService } from '../src/grpc/grpc-server.service';
import type { JobRecord } from '../src/contract/job-record';
import { JobsService } from '../src/jobs/jobs.service';
import { jobEnded, type LogLine, startCoordinator, workersJoined } from './support/coordinator-app';
import { unary } from './support/grpc-calls';
import { freePort } from './support/ports';
import { startWorker } from './support/worker-processes';

/**
 * Approximate sample forgetting on a joint model through SubmitForget: a model trained by the
 * coordinator on two real worker processes with a subject table given to StartTraining, then a
 * subject forgotten as a job of its own with the retrained experts on their workers; the
 * receipt, the ledger, idempotency and the refusals checked through the API.
 */

const dir = mkdtempSync(join(tmpdir(), 'lethe-joint-samples-'));
const storeDir = join(dir, 'store');
const store = new LocalDirStore(storeDir);
const id = (i: number): string => formatSampleId('cifar10', 'train', i);
const workers: ChildProcess[] = [];
const lines: LogLine[] = [];
let app: INestApplicationContext;
let client: CoordinatorClient;
let data: string;
// s1 owns samples 0, 5 and 9; s2 owns 1.
const TABLE = `sample,subject\n${id(0)},s1\n${id(5)},s1\n${id(9)},s1\n${id(1)},s2\n`;
const tableFile = join(dir, 'subjects.csv');

const spawnWorker = (name: string, port: number): void => {
  workers.push(startWorker({ name, port, storeDir }));
};
const rpc = <Req, Res>(
  method: (r: Req, cb: (e: grpc.ServiceError | null, res: Res) => void) => unknown,
  request: Req,
) => unary<Req, Res>(client, method, request);

const forget = (requestId: string, target: SubmitForgetRequest['target'], extra = {}) =>
  rpc<SubmitForgetRequest, SubmitForgetResponse>(
    client.submitForget,
    SubmitForgetRequest.fromPartial({ requestId, target, ...extra }),
  );
const subjects = (...ids: string[]): SubmitForgetRequest['target'] => ({
  $case: 'subjectIds',
  value: { ids },
});

const ended = (jobId: string): Promise<JobRecord> => jobEnded(app, jobId);

/** Every stored object but the audit log, with its hash. */
async function storeState(): Promise<string[]> {
  const objects = await store.list('');
  return objects.filter((o) => !o.key.startsWith('audit/')).map((o) => `${o.key} ${o.sha256}`);
}

beforeAll(async () => {
  const train = makeSyntheticDataset({ perClass: 16, split: 'train', seed: 5, classes: 3 });
  const test = makeSyntheticDataset({ perClass: 4, split: 'test', seed: 5, classes: 3 });
  data = `cifar10:${writeCifar10(dir, { train, test })}`;
  writeFileSync(tableFile, TABLE);
  const port = await freePort();
  app = await startCoordinator(
    ['--port', String(port), '--store', storeDir, '--db', join(dir, 'coordinator.sqlite')],
    lines,
  );
  client = new CoordinatorClient(
    app.get(GrpcServerService).address!,
    grpc.credentials.createInsecure(),
  );
  spawnWorker('samples-1', port);
  spawnWorker('samples-2', port);
  await workersJoined(app, 2);
  const started = await startTraining('train-joint', tableFile);
  expect(started.details).toBe('');
  const job = await ended(started.response!.jobId);
  expect(job.error).toBeUndefined();
}, 120_000);

const startTraining = (requestId: string, subjects: string) =>
  rpc<StartTrainingRequest, Job>(
    client.startTraining,
    StartTrainingRequest.fromPartial({
      requestId,
      mode: TrainingMode.TRAINING_MODE_JOINT,
      dataset: { source: { $case: 'uri', value: data } },
      preset: 'tiny',
      experts: 2,
      topK: 1,
      epochs: 1,
      batchSize: 16,
      learningRate: 0.003,
      seed: 3,
      subjects,
    }),
  );

afterAll(async () => {
  client?.close();
  await app?.close();
  for (const w of workers) w.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

describe('forgetting a subject of a joint model through SubmitForget', () => {
  it('trained with the subject table StartTraining named: roster and training record', async () => {
    const manifest = (await new ManifestStore(store).read())!;
    const roster = (await readRoster(store, manifest))!;
    const subjectOf = new Map(roster.indices.map((index, p) => [index, roster.subjects?.[p]]));
    expect([0, 5, 9, 1, 2].map((i) => subjectOf.get(i))).toEqual(['s1', 's1', 's1', 's2', null]);
    expect(roster.subjectTable).toBe(sha256Hex(new TextEncoder().encode(TABLE)));
    const training = manifest.attributes['training'] as Record<string, unknown>;
    expect(training['subjects']).toEqual({
      table: roster.subjectTable,
      subjects: 2,
      samplesWithSubject: 4,
    });
    const stored = app.get(JobsService).repository.byRequestId('training', 'train-joint')!;
    expect(stored.kind === 'training' && stored.request).toMatchObject({
      subjects: tableFile,
      subjectsSha256: roster.subjectTable,
    });
  });

  it('refuses a malformed or missing subject table at admission, storing nothing', async () => {
    const before = await storeState();
    const bad = join(dir, 'bad-subjects.csv');
    writeFileSync(bad, `sample,subject\n${id(0)},s1\n${id(0)},s2\n`);
    const twice = await startTraining('train-bad-table', bad);
    expect(twice.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(twice.details).toMatch(
      /bad-subjects\.csv line 3: sample cifar10:train:0 is listed twice/,
    );
    const far = join(dir, 'far-subjects.jsonl');
    writeFileSync(
      far,
      `{"sample": "${id(0)}", "subject": "s1"}\n{"sample": "${id(9999)}", "subject": "s2"}\n`,
    );
    const absent = await startTraining('train-far-table', far);
    expect(absent.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(absent.details).toMatch(
      /far-subjects\.jsonl line 2: sample cifar10:train:9999 is not in the dataset/,
    );
    const missing = await startTraining('train-no-table', join(dir, 'nope.csv'));
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    expect(missing.details).toMatch(/nope\.csv/);
    const control = await startTraining('train-ctl-table', 'subjects\n.csv');
    expect(control.code).toBe(grpc.status.INVALID_ARGUMENT);
    for (const requestId of ['train-bad-table', 'train-far-table', 'train-no-table']) {
      expect(app.get(JobsService).repository.byRequestId('training', requestId)).toBeUndefined();
    }
    expect(await storeState()).toEqual(before);
  });

  it('plans a dry run from the routing lineage and changes nothing', async () => {
    const before = await storeState();
    const planned = await forget('plan-s1', subjects('s1'), { dryRun: true });
    expect(planned.details).toBe('');
    const preview = planned.response!.preview!;
    expect(planned.response!.job).toBeUndefined();
    expect(preview.request).toMatchObject({
      target: { $case: 'sampleIds', value: { ids: [id(0), id(5), id(9)] } },
      subjects: ['s1'],
      method: ForgetMethod.FORGET_METHOD_NEGGRAD_PLUS,
    });
    expect(preview.plan!.samples).toBe(3);
    expect(preview.plan!.lineageEpochs).toBe(1);
    expect(preview.plan!.experts.length).toBeGreaterThan(0);
    expect(preview.plan!.seenBy.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(3);
    expect(preview.estimate!.expertsRetrained).toBe(preview.plan!.experts.length);
    expect(await storeState()).toEqual(before);
    expect(app.get(JobsService).repository.byRequestId('forget', 'plan-s1')).toBeUndefined();
  });

  it('refuses what it cannot forget, changing nothing', async () => {
    const before = await storeState();
    const unknown = await forget('erase-nobody', subjects('nobody'));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toMatch(/subject "nobody" has no sample/);
    const sample = await forget('erase-far', { $case: 'sampleIds', value: { ids: [id(9999)] } });
    expect(sample.code).toBe(grpc.status.NOT_FOUND);
    const replay = await forget('erase-replay', subjects('s2'), {
      method: ForgetMethod.FORGET_METHOD_SISA_REPLAY,
    });
    expect(replay.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(replay.details).toMatch(/sisa replay needs a sisa model/);
    const classOnly = await forget('erase-loss', subjects('s2'), { select: 'top:1' });
    expect(classOnly.code).toBe(grpc.status.INVALID_ARGUMENT);
    const wrongTarget = await forget(
      'erase-scrub-class',
      { $case: 'className', value: 'disc' },
      {
        method: ForgetMethod.FORGET_METHOD_SCRUB,
      },
    );
    expect(wrongTarget.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await storeState()).toEqual(before);
  });

  it('forgets the subject approximately, on the workers, with a receipt and a ledger entry', async () => {
    const accepted = await forget('erase-s1', subjects('s1'));
    expect(accepted.details).toBe('');
    const jobId = accepted.response!.job!.jobId;
    const stored = app.get(JobsService).repository.byRequestId('forget', 'erase-s1')!;
    expect(stored.request as ForgetJobRequest).toMatchObject({
      method: 'samples',
      subjects: ['s1'],
      sampleIds: [id(0), id(5), id(9)],
    });
    // The same request id again, even while it runs: the same job.
    const retry = await forget('erase-s1', subjects('s1'));
    expect(retry.response).toMatchObject({ duplicate: true, job: { jobId } });
    const job = await ended(jobId);
    expect(job.error).toBeUndefined();
    expect(job.state).toBe('succeeded');
    expect(
      lines.some((l) => l.jobId === jobId && /on their workers$/.test(l.msg)),
      'the retrained experts stepped on their workers',
    ).toBe(true);

    const { response: receipt } = await rpc<GetReceiptRequest, Receipt>(client.getReceipt, {
      requestId: 'erase-s1',
    });
    expect(receipt!.mode).toBe(ForgetMode.FORGET_MODE_APPROXIMATE);
    expect(receipt!.jobId).toBe(jobId);
    expect(receipt!.request).toMatchObject({
      target: { $case: 'sampleIds', value: { ids: [id(0), id(5), id(9)] } },
      subjects: ['s1'],
      method: ForgetMethod.FORGET_METHOD_NEGGRAD_PLUS,
      // The default anchor of neggrad+, recorded with the recipe.
      anchor: DEFAULT_SAMPLE_FORGET_RECIPE.anchor,
    });
    expect(receipt!.expertsRetrained).toEqual(receipt!.plan!.experts);
    expect(receipt!.partsChanged).toContain('router');
    for (const m of [receipt!.metrics!.before!, receipt!.metrics!.after!]) {
      for (const v of [m.ua, m.ra, m.ta, m.miaEfficacy]) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(100);
      }
    }
    // neggrad+ says where its ascent stopped: a loss, at most chance's (ln 3).
    expect(receipt!.ascentStop).toBeGreaterThan(0);
    expect(receipt!.ascentStop).toBeLessThanOrEqual(Math.log(3)); // three classes
    expect(receipt!.manifest!.after).toBe(job.manifestRevision);

    const manifest = (await new ManifestStore(store).read())!;
    expect(manifest.objects['receipt/erase-s1']).toEqual(receipt!.object);
    const erased = erasedOf(await readLedger(store, manifest));
    expect(erased.byRequest.get('erase-s1')).toMatchObject({
      mode: 'approximate',
      subjects: ['s1'],
      sampleIds: [id(0), id(5), id(9)],
    });
    const audit = await readAuditLog(store, { requestId: 'erase-s1' });
    expect(audit.map((e) => [e.action, e.result.outcome])).toEqual(
      expect.arrayContaining([
        ['SubmitForget', 'accepted'],
        ['ForgetJobFinished', 'succeeded'],
      ]),
    );
    expect(audit.find((e) => e.action === 'ForgetJobFinished')?.target?.subjects).toEqual(['s1']);
  });

  it('refuses the subject and its samples once forgotten, naming the request', async () => {
    const before = await storeState();
    const again = await forget('erase-s1-again', subjects('s1'));
    expect(again.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(again.details).toMatch(/subject "s1", erased by request erase-s1/);
    const sample = await forget('erase-5', { $case: 'sampleIds', value: { ids: [id(5)] } });
    expect(sample.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(sample.details).toMatch(/request erase-s1/);
    const retry = await forget('erase-s1', subjects('s1'));
    expect(retry.response).toMatchObject({ duplicate: true });
    expect(await storeState()).toEqual(before);
    // Refusals are audited in the background.
    for (
      let i = 0;
      i < 100 && (await readAuditLog(store, { requestId: 'erase-s1-again' })).length === 0;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const refused = await readAuditLog(store, { requestId: 'erase-s1-again' });
    expect(refused.map((e) => e.result.status)).toEqual(['FAILED_PRECONDITION']);
  });
});
