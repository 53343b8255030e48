import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  CIFAR10_STATS,
  formatSampleId,
  makeSyntheticDataset,
  readCifar10,
  writeCifar10,
} from '@lethe/data';
import { initEngine } from '@lethe/engine';
import { appendErasures, LEDGER_OBJECT, parseSubjectTable, readLedger } from '@lethe/ledger';
import {
  CoordinatorClient,
  type ListSamplesRequest,
  type ListSamplesResponse,
  SubmitForgetRequest,
  type SubmitForgetResponse,
} from '@lethe/proto';
import { trainSisaModel } from '@lethe/sisa';
import { LocalDirStore, ManifestStore, putContent } from '@lethe/store';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCoordinatorConfig } from '../src/config/coordinator-config';
import { CoordinatorModule } from '../src/coordinator.module';
import type { ForgetJobRequest } from '../src/contract/forget-request';
import { GrpcServerService } from '../src/grpc/grpc-server.service';
import { JobsService } from '../src/jobs/jobs.service';
import { unary } from './support/grpc-calls';

const dir = mkdtempSync(join(tmpdir(), 'lethe-coordinator-subjects-'));
const storeDir = join(dir, 'store');
const store = new LocalDirStore(storeDir);
const id = (i: number): string => formatSampleId('cifar10', 'train', i);
// s1 owns samples 0, 4 and 8; s2 owns 1.
const table = parseSubjectTable(
  new TextEncoder().encode(`sample,subject\n${id(0)},s1\n${id(4)},s1\n${id(8)},s1\n${id(1)},s2\n`),
  'subjects.csv',
);
let app: INestApplicationContext;
let client: CoordinatorClient;

const rpc = <Req, Res>(
  method: (r: Req, cb: (e: grpc.ServiceError | null, res: Res) => void) => unknown,
  request: Req,
) => unary<Req, Res>(client, method, request);

const listSamples = (selector: ListSamplesRequest['selector']) =>
  rpc<ListSamplesRequest, ListSamplesResponse>(client.listSamples, { selector });

const forget = (requestId: string, ids: string[]) =>
  rpc<SubmitForgetRequest, SubmitForgetResponse>(
    client.submitForget,
    SubmitForgetRequest.fromPartial({ requestId, target: { $case: 'subjectIds', value: { ids } } }),
  );

/** Every stored object but the audit log, with its hash. */
async function storeState(): Promise<string[]> {
  const objects = await store.list('');
  return objects.filter((o) => !o.key.startsWith('audit/')).map((o) => `${o.key} ${o.sha256}`);
}

beforeAll(async () => {
  await initEngine({ engine: 'wasm', log: () => undefined });
  const spec = `cifar10:${writeCifar10(dir, {
    train: makeSyntheticDataset({ perClass: 8, split: 'train', seed: 2, classes: 3 }),
    test: makeSyntheticDataset({ perClass: 2, split: 'test', seed: 2, classes: 3 }),
  })}`;
  const train = await readCifar10(spec.slice('cifar10:'.length), 'train');
  await trainSisaModel(store, train, {
    dataset: spec,
    config: {
      preset: 'tiny',
      experts: 2,
      topK: 1,
      numClasses: train.classes.length,
      inputShape: [32, 32, 3],
      routerNoise: 0,
      balanceWeight: 0.1,
      seed: 1,
    },
    classes: train.classes,
    normalise: CIFAR10_STATS,
    slices: 2,
    assignment: 'uniform',
    epochsPerSlice: 1,
    routerEpochs: 1,
    routerFraction: 0.5,
    batchSize: 8,
    learningRate: 0.01,
    weightDecay: 0,
    subjects: table,
  });
  // s2 was forgotten earlier: the ledger holds it.
  const manifest = (await new ManifestStore(store).read())!;
  const receipt = await putContent(store, new TextEncoder().encode('{}'), { kind: 'receipt' });
  const ledger = await appendErasures(store, await readLedger(store, manifest), [
    { requestId: 'erase-s2', receipt, mode: 'exact', sampleIds: [id(1)], subjects: ['s2'] },
  ]);
  await new ManifestStore(store).update((d) => {
    d.objects['receipt/erase-s2'] = receipt;
    d.objects[LEDGER_OBJECT] = ledger;
  });
  const config = loadCoordinatorConfig(
    ['--port', '0', '--store', storeDir, '--db', join(dir, 'coordinator.sqlite')],
    { LETHE_WORKER_DEADLINE_MS: '500' },
  );
  app = await NestFactory.createApplicationContext(
    CoordinatorModule.forRoot(config, pino({ level: 'silent' })),
    { logger: false },
  );
  await app.init();
  client = new CoordinatorClient(
    app.get(GrpcServerService).address!,
    grpc.credentials.createInsecure(),
  );
});

afterAll(async () => {
  client?.close();
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('data subjects through the Coordinator API', () => {
  it('lists the samples of a subject, a class and a shard, without what the ledger holds', async () => {
    const s1 = await listSamples({ $case: 'subject', value: 's1' });
    expect(s1.response!.samples.map((s) => s.sampleId)).toEqual([id(0), id(4), id(8)]);
    expect(s1.response!.samples.every((s) => s.subject === 's1')).toBe(true);
    expect((await listSamples({ $case: 'subject', value: 's2' })).response!.samples).toEqual([]);
    const shard = (await listSamples({ $case: 'shard', value: 1 })).response!.samples;
    expect(shard.length).toBeGreaterThan(0);
    expect(new Set(shard.map((s) => s.slice))).toEqual(new Set([0, 1]));
    expect((await listSamples({ $case: 'shard', value: 2 })).code).toBe(grpc.status.NOT_FOUND);
    expect((await listSamples(undefined)).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('refuses unknown and already forgotten subjects, changing nothing', async () => {
    const before = await storeState();
    const unknown = await forget('erase-nobody', ['nobody']);
    expect(unknown).toMatchObject({ code: grpc.status.NOT_FOUND });
    expect(unknown.details).toMatch(/subject "nobody" has no sample/);
    const again = await forget('erase-s2-again', ['s2']);
    expect(again.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(again.details).toMatch(/subject "s2", erased by request erase-s2, is already forgotten/);
    expect((await forget('erase-empty', [])).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await storeState()).toEqual(before);
  });

  it('plans a dry run of subjects and samples on the sisa model, changing nothing', async () => {
    const before = await storeState();
    const planned = await rpc<SubmitForgetRequest, SubmitForgetResponse>(
      client.submitForget,
      SubmitForgetRequest.fromPartial({
        requestId: 'plan-s1',
        target: { $case: 'subjectIds', value: { ids: ['s1'] } },
        dryRun: true,
      }),
    );
    expect(planned.code).toBe(grpc.status.OK);
    const plan = planned.response!.sisaPlan!;
    expect(planned.response!.job).toBeUndefined();
    expect(plan.samples).toBe(3);
    expect(plan.shards).toBe(2);
    expect(plan.replay.map((r) => r.samplesRemoved).reduce((a, b) => a + b, 0)).toBe(3);
    for (const r of plan.replay) expect(r.slicesReplayed.at(-1)).toBe(1);
    expect(plan.sampleEpochs).toBeLessThanOrEqual(plan.fullTrainingSampleEpochs);
    expect(plan.estimate!.rateSource).toBe('training');
    expect(plan.estimate!.totalSeconds).toBeGreaterThan(0);
    const samples = await rpc<SubmitForgetRequest, SubmitForgetResponse>(
      client.submitForget,
      SubmitForgetRequest.fromPartial({
        requestId: 'plan-0',
        target: { $case: 'sampleIds', value: { ids: [id(0)] } },
        dryRun: true,
      }),
    );
    expect(samples.response!.sisaPlan!.samples).toBe(1);
    // No job, no audit entry, no stored change; the request ids stay free.
    expect(await storeState()).toEqual(before);
    for (const entry of await store.list('audit/')) {
      const text = new TextDecoder().decode(await store.get(entry.key));
      expect(text).not.toMatch(/plan-s1|plan-0/);
    }
    expect(app.get(JobsService).repository.byRequestId('forget', 'plan-s1')).toBeUndefined();
  });

  it('accepts a subject as the job that replays its samples', async () => {
    const accepted = await forget('erase-s1', ['s1']);
    expect(accepted.code).toBe(grpc.status.OK);
    const job = app.get(JobsService).repository.byRequestId('forget', 'erase-s1')!;
    expect(job.request as ForgetJobRequest).toMatchObject({
      method: 'sisa-replay',
      subjects: ['s1'],
      sampleIds: [id(0), id(4), id(8)],
    });
    // The same request again: the same job.
    const retry = await forget('erase-s1', ['s1']);
    expect(retry.response).toMatchObject({ duplicate: true });
  });
});
