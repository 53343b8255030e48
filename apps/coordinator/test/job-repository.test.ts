import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { TrainingMode } from '@lethe/proto';
import { IntegrityError } from '@lethe/store';
import { describe, expect, it } from 'vitest';
import type { NewJob } from '../src/contract/job-record';
import { toProtoJob } from '../src/jobs/job-proto';
import { JobRepository } from '../src/jobs/job-repository';

const job = (requestId: string, fingerprint = 'f1'): NewJob => ({
  kind: 'forget',
  requestId,
  fingerprint,
  request: {
    requestId,
    classIndex: 1,
    className: 'cat',
    method: 'targeted',
    maskOutput: false,
    seed: 0,
  },
});

// The jobs table as the coordinator's first release created it (end_audited came later), and
// requests exactly as today's admission writes them (JSON.stringify of the normalised request).
const FIRST_TABLE = `CREATE TABLE jobs (
  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, kind TEXT NOT NULL, state TEXT NOT NULL,
  request_id TEXT NOT NULL, fingerprint TEXT NOT NULL, request TEXT NOT NULL,
  created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER, progress TEXT,
  error TEXT, manifest_revision INTEGER NOT NULL DEFAULT 0, checkpoints TEXT)`;
const STORED: [kind: string, state: string, request: string][] = [
  [
    'training',
    'succeeded',
    '{"mode":"sisa","sisa":{"slices":4,"routerEpochs":2},"dataset":"cifar10:/data/cifar","limit":0,"preset":"small","experts":4,"topK":2,"epochs":10,"batchSize":128,"learningRate":0.003,"weightDecay":0.0005,"schedule":"one-cycle","seed":0,"balanceWeight":0.1,"routerNoise":0.5,"specializeWeight":0,"augment":true}',
  ],
  [
    'forget',
    'succeeded',
    '{"requestId":"r-class","classIndex":3,"className":"cat","method":"targeted","loss":"distill","retainFraction":0.1,"maskOutput":true,"seed":7,"submittedBy":{"subject":"anonymous","role":"anonymous","via":"none"}}',
  ],
  [
    'forget',
    'queued',
    '{"requestId":"r-sisa","classIndex":-1,"className":"","method":"sisa-replay","sampleIds":["cifar:train:1","cifar:train:2"],"subjects":["alice"],"maskOutput":false,"seed":0,"submittedBy":{"subject":"ops","role":"admin","via":"token"}}',
  ],
  [
    'forget',
    'failed',
    '{"requestId":"r-joint","classIndex":-1,"className":"","method":"samples","sampleMethod":"neggrad+","sampleIds":["cifar:train:9"],"epochs":2,"learningRate":0.0003,"maskOutput":false,"seed":1}',
  ],
];

function databaseWith(rows: readonly (readonly [string, string, string])[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'lethe-jobs-')), 'jobs.sqlite');
  const db = new Database(file);
  db.exec(FIRST_TABLE);
  rows.forEach(([kind, state, request], i) =>
    db
      .prepare('INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, 0, NULL)')
      .run(`job-00000${i + 1}`, i + 1, kind, state, `r-${i}`, 'f', request, 1_700_000_000_000),
  );
  db.close();
  return file;
}

describe('JobRepository', () => {
  it('survives a reopen: accepted jobs, their states and progress are durable', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'lethe-jobs-')), 'jobs.sqlite');
    const first = new JobRepository(file);
    const a = first.insertUnlessExists(job('r1')).job;
    first.markRunning(a.id);
    first.saveProgress(a.id, {
      phase: 'forget',
      epoch: 1,
      epochs: 5,
      step: 2,
      stepsPerEpoch: 10,
      globalStep: 2,
      totalSteps: 50,
      loss: 0.5,
      accuracy: 0.9,
      imagesPerSecond: 100,
      learningRate: 1e-4,
    });
    const b = first.insertUnlessExists(job('r2')).job;
    first.close();
    const second = new JobRepository(file);
    expect(second.get(a.id)).toMatchObject({ state: 'running', requestId: 'r1', seq: 1 });
    expect(second.get(a.id)!.progress!.globalStep).toBe(2);
    expect(second.list(['queued']).map((j) => j.id)).toEqual([b.id]);
    expect(second.requeue(a.id).state).toBe('queued');
    second.close();
  });

  it('returns the live or succeeded job holding a request id instead of a second one', () => {
    const repo = new JobRepository(':memory:');
    const a = repo.insertUnlessExists(job('r1'));
    expect(a.existing).toBe(false);
    const again = repo.insertUnlessExists(job('r1', 'other'));
    expect(again).toMatchObject({ existing: true, job: { id: a.job.id, fingerprint: 'f1' } });
    repo.finish(a.job.id, 'succeeded', { manifestRevision: 3 });
    expect(repo.insertUnlessExists(job('r1')).existing).toBe(true);
    repo.close();
  });

  it('frees a request id when its job failed or was cancelled', () => {
    const repo = new JobRepository(':memory:');
    const a = repo.insertUnlessExists(job('r1')).job;
    repo.finish(a.id, 'cancelled');
    const b = repo.insertUnlessExists(job('r1'));
    expect(b.existing).toBe(false);
    expect(b.job.id).not.toBe(a.id);
    expect(repo.byRequestId('forget', 'r1')!.id).toBe(b.job.id);
    repo.close();
  });

  it('reads rows as written today, each request parsed by its kind into a narrowed record', () => {
    const repo = new JobRepository(databaseWith(STORED));
    const jobs = repo.list();
    expect(jobs.map((j) => [j.kind, j.state])).toEqual(STORED.map(([k, s]) => [k, s]));
    // Parsing keeps the stored format: every request serialises back to the same text.
    expect(jobs.map((j) => JSON.stringify(j.request))).toEqual(STORED.map(([, , r]) => r));
    const [training, targeted, sisa, joint] = jobs;
    expect(training!.kind === 'training' && training!.request.sisa).toEqual({
      slices: 4,
      routerEpochs: 2,
    });
    expect(targeted!.kind === 'forget' && targeted!.request.submittedBy?.via).toBe('none');
    expect(joint!.kind === 'forget' && joint!.request.sampleMethod).toBe('neggrad+');
    expect([training, targeted, sisa, joint].map((j) => toProtoJob(j!).mode)).toEqual([
      TrainingMode.TRAINING_MODE_SISA,
      TrainingMode.TRAINING_MODE_JOINT,
      TrainingMode.TRAINING_MODE_SISA,
      TrainingMode.TRAINING_MODE_JOINT,
    ]);
    // Opening added the later column; a new job is written in the same format.
    const added = repo.insertUnlessExists(job('r-new')).job;
    expect(added.seq).toBe(5);
    repo.close();
  });

  it('reads a training row stored before the specialization loss existed as trained without it', () => {
    const before = STORED[0]![2].replace(',"specializeWeight":0', '');
    const repo = new JobRepository(databaseWith([['training', 'succeeded', before]]));
    const [training] = repo.list();
    expect(training!.kind === 'training' && training!.request.specializeWeight).toBe(0);
    repo.close();
  });

  it('refuses a damaged row with an integrity error naming the job', () => {
    const bad: [string, string][] = [
      ['forget', STORED[1]![2].replace('"targeted"', '"unheard-of"')],
      ['forget', STORED[1]![2].replace('"seed":7', '"seed":null')],
      ['forget', STORED[0]![2]],
      ['training', STORED[1]![2]],
      ['training', '{"mode":"joint",'],
      ['cleanup', '{}'],
    ];
    for (const [kind, request] of bad) {
      const repo = new JobRepository(databaseWith([[kind, 'queued', request]]));
      expect(() => repo.get('job-000001')).toThrow(IntegrityError);
      expect(() => repo.list()).toThrow(/job job-000001: stored job row is damaged/);
      repo.close();
    }
    const repo = new JobRepository(databaseWith([STORED[2]!]));
    expect(() => repo.get('job-000001')).not.toThrow();
    repo.close();
  });
});
