import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ForgetClock } from '@lethe/sisa';
import { JobState } from '@lethe/proto';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditService } from '../src/audit/audit.service';
import { ConfigError, loadCoordinatorConfig } from '../src/config/coordinator-config';
import type { JobReporter, EngineService } from '../src/engine/engine.service';
import type { JobEnd, JobOrder } from '../src/engine/engine-protocol';
import type { ForgetJobRequest } from '../src/contract/forget-request';
import { JobsService } from '../src/jobs/jobs.service';
import { MetricsService } from '../src/metrics/metrics.service';
import type { ModelStateService } from '../src/model/model-state.service';
import type { WorkersService } from '../src/workers/workers.service';
import { until } from './support/polling';

// The job queue's forget window with the engine thread, workers, audit log and model replaced by
// fakes and a clock the test moves: sisa forgets wait QUEUED until the window of the oldest one
// closes, then one replay (one engine order) serves all of them, each job ending on its own.

const log = pino({ level: 'silent' });
const HOUR = 3_600_000;
const dirs: string[] = [];
const services: JobsService[] = [];

afterEach(async () => {
  for (const jobs of services.splice(0)) await jobs.onApplicationShutdown();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Date.now plus however far the test moved it; due timers fire in time order. */
class FakeClock implements ForgetClock {
  #offset = 0;
  #timers: { due: number; fn: () => void; live: boolean }[] = [];
  now(): number {
    return Date.now() + this.#offset;
  }
  setTimer(fn: () => void, ms: number): () => void {
    const timer = { due: this.now() + ms, fn, live: true };
    this.#timers.push(timer);
    return () => (timer.live = false);
  }
  advance(ms: number): void {
    this.#offset += ms;
    for (const t of this.#timers.filter((t) => t.live && t.due <= this.now())) {
      t.live = false;
      t.fn();
    }
  }
}

function jobsWith(windowMs: number, clock: FakeClock) {
  const dir = mkdtempSync(join(tmpdir(), 'lethe-forget-window-'));
  dirs.push(dir);
  const config = loadCoordinatorConfig(
    ['--db', join(dir, 'jobs.sqlite'), '--store', dir, '--forget-window-ms', String(windowMs)],
    {},
  );
  const orders: JobOrder[] = [];
  const engine = {
    stopping: false,
    runJob: async (order: JobOrder, _reporter: JobReporter): Promise<JobEnd[]> => {
      orders.push(order);
      const n = order.kind === 'sisa-forget' ? order.requests.length : 1;
      return Array.from({ length: n }, () => ({ manifestRevision: 9 }));
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
  const metrics = new MetricsService(config, log);
  const jobs = new JobsService(config, log, workers, engine, audit, metrics, models, clock);
  services.push(jobs);
  jobs.onApplicationBootstrap();
  return { jobs, orders };
}

const samples = (requestId: string, ids: string[]): ForgetJobRequest => ({
  requestId,
  classIndex: -1,
  className: '',
  method: 'sisa-replay',
  sampleIds: ids,
  maskOutput: false,
  seed: 0,
});

/** In-process jobs settle within milliseconds: poll often, give up after 5 s. */
const settled = (what: string, done: () => boolean): Promise<boolean> =>
  until(what, done, 5_000, 5);

describe('forget window in the job queue', () => {
  it('holds sisa forgets QUEUED until the window closes, then replays them once', async () => {
    const clock = new FakeClock();
    const { jobs, orders } = jobsWith(HOUR, clock);
    const a = jobs.submit({
      kind: 'forget',
      requestId: 'a',
      fingerprint: 'fa',
      request: samples('a', ['d:train:1']),
    }).job;
    const b = jobs.submit({
      kind: 'forget',
      requestId: 'b',
      fingerprint: 'fb',
      request: samples('b', ['d:train:2']),
    }).job;
    const c = jobs.submit({
      kind: 'forget',
      requestId: 'c',
      fingerprint: 'fc',
      request: samples('c', ['d:train:3']),
    }).job;
    await new Promise((r) => setTimeout(r, 20));
    expect(orders).toEqual([]);
    const shown = jobs.toProto(jobs.get(b.id)!);
    expect(shown.state).toBe(JobState.JOB_STATE_QUEUED);
    // Every request of the batch shows when the batch closes: the oldest one's window.
    expect(shown.forgetWindowClosesAt!.getTime()).toBe(a.createdAt.getTime() + HOUR);
    // Idempotency by request id: the same request again is the same job, not a new one.
    const again = jobs.submit({
      kind: 'forget',
      requestId: 'b',
      fingerprint: 'fb',
      request: samples('b', ['d:train:2']),
    });
    expect(again).toMatchObject({ existing: true, job: { id: b.id } });
    // Cancelling one request before the window closes takes it out of the batch.
    expect(jobs.cancel(b.id).state).toBe('cancelled');

    clock.advance(HOUR - 60_000);
    await new Promise((r) => setTimeout(r, 20));
    expect(orders).toEqual([]);
    clock.advance(60_000);
    await settled('the batch to succeed', () => jobs.get(c.id)!.state === 'succeeded');
    expect(orders).toHaveLength(1);
    expect(orders[0]).toMatchObject({ kind: 'sisa-forget', jobId: a.id });
    const order = orders[0] as Extract<JobOrder, { kind: 'sisa-forget' }>;
    expect(order.requests.map((r) => r.requestId)).toEqual(['a', 'c']);
    expect(jobs.get(a.id)).toMatchObject({ state: 'succeeded', manifestRevision: 9 });
    expect(jobs.get(b.id)!.state).toBe('cancelled');
    expect(jobs.toProto(jobs.get(a.id)!).forgetWindowClosesAt).toBeUndefined();
  });

  it('does not hold class forgets, nor sisa forgets with the default window 0', async () => {
    const clock = new FakeClock();
    const { jobs, orders } = jobsWith(HOUR, clock);
    const joint = jobs.submit({
      kind: 'forget',
      requestId: 'k',
      fingerprint: 'fk',
      request: {
        ...samples('k', []),
        sampleIds: undefined,
        classIndex: 1,
        className: 'cat',
        method: 'targeted',
      },
    }).job;
    await settled('the joint forget to succeed', () => jobs.get(joint.id)!.state === 'succeeded');
    expect(orders.map((o) => o.kind)).toEqual(['forget']);

    const immediate = jobsWith(0, new FakeClock());
    const x = immediate.jobs.submit({
      kind: 'forget',
      requestId: 'x',
      fingerprint: 'fx',
      request: samples('x', ['d:train:1']),
    }).job;
    await settled(
      'the immediate forget to succeed',
      () => immediate.jobs.get(x.id)!.state === 'succeeded',
    );
    expect(immediate.jobs.toProto(immediate.jobs.get(x.id)!).forgetWindowClosesAt).toBeUndefined();
  });

  it('bounds the setting to a day', () => {
    expect(() => loadCoordinatorConfig(['--forget-window-ms', '86400001'], {})).toThrow(
      ConfigError,
    );
    expect(() => loadCoordinatorConfig(['--forget-window-ms', '-1'], {})).toThrow(/forgetWindowMs/);
    expect(loadCoordinatorConfig([], { LETHE_FORGET_WINDOW_MS: '600000' }).forgetWindowMs).toBe(
      600_000,
    );
  });
});
