import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditService } from '../src/audit/audit.service';
import { loadCoordinatorConfig } from '../src/config/coordinator-config';
import type { JobReporter, EngineService } from '../src/engine/engine.service';
import type { JobEnd, JobOrder } from '../src/engine/engine-protocol';
import type { ForgetJobRequest } from '../src/contract/forget-request';
import { JobsService } from '../src/jobs/jobs.service';
import { MetricsService } from '../src/metrics/metrics.service';
import type { ModelStateService } from '../src/model/model-state.service';
import type { WorkersService } from '../src/workers/workers.service';
import { until } from './support/polling';

// The jobs service with the engine thread, workers, audit log and model store replaced by fakes:
// what is under test is that a forget job's end is observed in lethe_forget_request_seconds.

const log = pino({ level: 'silent' });
const dirs: string[] = [];
const services: JobsService[] = [];

afterEach(async () => {
  for (const jobs of services.splice(0)) await jobs.onApplicationShutdown();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A jobs service whose engine answers every job with `end` once `release` is called. */
function jobsWith(end: JobEnd): {
  jobs: JobsService;
  metrics: MetricsService;
  release: () => void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'lethe-forget-latency-'));
  dirs.push(dir);
  const config = loadCoordinatorConfig(['--db', join(dir, 'jobs.sqlite'), '--store', dir], {});
  const metrics = new MetricsService(config, log);
  let release = (): void => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const engine = {
    stopping: false,
    runJob: async (_order: JobOrder, _reporter: JobReporter): Promise<JobEnd[]> => {
      await released;
      return [end];
    },
    abortJob: () => undefined,
  } as unknown as EngineService;
  const workers = {
    placement: { busy: false, place: () => undefined },
  } as unknown as WorkersService;
  const audit = {
    forgetFinished: async (_job: unknown, written: () => void) => written(),
  } as unknown as AuditService;
  const models = {
    state: { current: async () => undefined, routingHealth: async () => undefined },
  } as unknown as ModelStateService;
  const jobs = new JobsService(config, log, workers, engine, audit, metrics, models);
  services.push(jobs);
  return { jobs, metrics, release };
}

const forget = (requestId: string, method: ForgetJobRequest['method']): ForgetJobRequest => ({
  requestId,
  classIndex: 1,
  className: 'disc',
  method,
  maskOutput: false,
  seed: 0,
});

/** In-process jobs settle within milliseconds: poll often, give up after 5 s. */
const settled = (what: string, done: () => boolean): Promise<boolean> =>
  until(what, done, 5_000, 5);

/** The histogram's count and sum for one label set. */
async function observed(
  metrics: MetricsService,
  labels: Record<string, string>,
): Promise<{ count: number; sum: number }> {
  const { values } = await metrics.forgetRequestSeconds.get();
  const matches = (l: Record<string, string | number>): boolean =>
    Object.entries(labels).every(([k, v]) => l[k] === v);
  const value = (name: string): number =>
    values.find((v) => v.metricName === name && matches(v.labels))?.value ?? 0;
  return {
    count: value('lethe_forget_request_seconds_count'),
    sum: value('lethe_forget_request_seconds_sum'),
  };
}

describe('lethe_forget_request_seconds', () => {
  it('observes a forget from its acceptance to its published end, by method and outcome', async () => {
    const { jobs, metrics, release } = jobsWith({ manifestRevision: 7 });
    const { job } = jobs.submit({
      kind: 'forget',
      requestId: 'f-1',
      fingerprint: 'fp',
      request: forget('f-1', 'targeted'),
    });
    // Queued and running time both count: nothing is observed until the job ends.
    await settled('the job to run', () => jobs.get(job.id)?.state === 'running');
    expect((await observed(metrics, {})).count).toBe(0);
    await new Promise((r) => setTimeout(r, 30));
    release();
    await settled('the job to succeed', () => jobs.get(job.id)?.state === 'succeeded');

    const end = jobs.get(job.id)!;
    const seen = await observed(metrics, { method: 'targeted', outcome: 'succeeded' });
    expect(seen.count).toBe(1);
    expect(seen.sum).toBeCloseTo((end.finishedAt!.getTime() - end.createdAt.getTime()) / 1000, 6);
    expect(seen.sum).toBeGreaterThanOrEqual(0.02);
  });

  it('labels a failed forget as failed and a cancelled queued one as cancelled', async () => {
    const { jobs, metrics, release } = jobsWith({ error: 'dataset gone' });
    const first = jobs.submit({
      kind: 'forget',
      requestId: 'f-2',
      fingerprint: 'fp',
      request: forget('f-2', 'retrain'),
    }).job;
    const queued = jobs.submit({
      kind: 'forget',
      requestId: 'f-3',
      fingerprint: 'fp',
      request: forget('f-3', 'finetune'),
    }).job;
    jobs.cancel(queued.id);
    release();
    await settled('the first job to fail', () => jobs.get(first.id)?.state === 'failed');

    expect((await observed(metrics, { method: 'retrain', outcome: 'failed' })).count).toBe(1);
    expect((await observed(metrics, { method: 'finetune', outcome: 'cancelled' })).count).toBe(1);
    expect((await observed(metrics, { outcome: 'succeeded' })).count).toBe(0);
  });

  it('does not observe training jobs', async () => {
    const { jobs, metrics, release } = jobsWith({ manifestRevision: 1 });
    const { job } = jobs.submit({
      kind: 'training',
      requestId: 't-1',
      fingerprint: 'fp',
      request: {
        mode: 'joint',
        dataset: 'synthetic:4',
        limit: 0,
        preset: 'small',
        experts: 4,
        topK: 2,
        epochs: 1,
        batchSize: 8,
        learningRate: 0.003,
        weightDecay: 0,
        schedule: 'constant',
        seed: 1,
        balanceWeight: 0.1,
        routerNoise: 0.5,
        specializeWeight: 0,
        augment: false,
      },
    });
    release();
    await settled('the job to succeed', () => jobs.get(job.id)?.state === 'succeeded');
    expect((await observed(metrics, {})).count).toBe(0);
  });
});
