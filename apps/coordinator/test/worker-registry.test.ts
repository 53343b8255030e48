import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkerRegistry } from '../src/workers/worker-registry';

const log = pino({ level: 'silent' });
const timings = { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 400 };
const registration = (address: string, name = '') => ({
  address,
  name,
  capacity: { maxExperts: 2 },
  device: undefined,
  version: '0.1.0',
});

describe('WorkerRegistry', () => {
  const registries: WorkerRegistry[] = [];
  const make = () => {
    const r = new WorkerRegistry(timings, log);
    registries.push(r);
    return r;
  };
  afterEach(() => registries.splice(0).forEach((r) => r.close()));

  it('never hands out an id a worker may still hold from a previous coordinator', () => {
    const before = make();
    const after = make();
    const old = before.register(registration('127.0.0.1:5001')).workerId;
    const fresh = after.register(registration('127.0.0.1:5002')).workerId;
    expect(fresh).not.toBe(old);
    expect(() => after.heartbeat({ workerId: old, load: undefined })).toThrow(
      /NOT_FOUND|unknown worker/,
    );
  });

  it('declares a silent worker lost after the timeout and moves it out of the live set', async () => {
    const registry = make();
    const lost: string[] = [];
    registry.on('lost', (w, reason) => lost.push(`${w.id}: ${reason}`));
    const { workerId } = registry.register(registration('127.0.0.1:5003'));
    expect(registry.live().map((w) => w.id)).toEqual([workerId]);
    await new Promise((r) => setTimeout(r, 700));
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatch(/no heartbeat/);
    expect(registry.live()).toEqual([]);
    expect(() => registry.heartbeat({ workerId, load: undefined })).toThrow(/register again/);
  });

  it('refuses a name held by another live worker, and bad registrations', () => {
    const registry = make();
    registry.register(registration('127.0.0.1:5004', 'gpu-0'));
    expect(() => registry.register(registration('127.0.0.1:5005', 'gpu-0'))).toThrow(
      /held by live worker/,
    );
    expect(() => registry.register(registration('no-port'))).toThrow(/host:port/);
    expect(() =>
      registry.register({ ...registration('127.0.0.1:5006'), capacity: { maxExperts: 0 } }),
    ).toThrow(/max_experts/);
  });
});
