import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobRepository } from '../src/jobs/job-repository';

const job = (requestId: string, fingerprint = 'f1') => ({
  kind: 'forget' as const,
  requestId,
  fingerprint,
  request: { classIndex: 1 },
});

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
});
