import * as grpc from '@grpc/grpc-js';
import {
  type DeregisterRequest,
  type HeartbeatRequest,
  type RegisterRequest,
  type RegistryServer,
  RegistryService,
} from '@lethe/proto';
import {
  notFound,
  type RunningServer,
  startGrpcServer,
  unaryHandler,
  unavailable,
} from '@lethe/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker } from '../src/worker';
import { eventually, quietLogger, spawnWorker, workerConfig } from './fixtures';

/** A coordinator's Registry service that records every call. */
class FakeRegistry {
  registers: RegisterRequest[] = [];
  heartbeats: HeartbeatRequest[] = [];
  deregisters: DeregisterRequest[] = [];
  /** Register answers UNAVAILABLE this many more times. */
  unavailableFor = 0;
  /** The next heartbeat answers NOT_FOUND (the coordinator "forgot" the worker). */
  forgetNext = false;
  private server: RunningServer | undefined;

  get address(): string {
    return this.server!.address;
  }

  async start(): Promise<void> {
    const implementation: RegistryServer = {
      register: unaryHandler(async (request) => {
        if (this.unavailableFor > 0) {
          this.unavailableFor--;
          throw unavailable('coordinator starting');
        }
        this.registers.push(request);
        return {
          workerId: `w-${this.registers.length}`,
          heartbeatIntervalMs: 100,
          heartbeatTimeoutMs: 1_000,
        };
      }),
      heartbeat: unaryHandler(async (request) => {
        this.heartbeats.push(request);
        if (this.forgetNext) {
          this.forgetNext = false;
          throw notFound(`unknown worker_id '${request.workerId}'`);
        }
        return { ack: true, heartbeatIntervalMs: 100, assignedExpertIds: [] };
      }),
      deregister: unaryHandler(async (request) => {
        this.deregisters.push(request);
        return {};
      }),
    };
    this.server = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [{ definition: RegistryService, implementation }],
      healthServices: ['lethe.v1.Registry'],
    });
  }

  stop(): Promise<void> {
    return this.server!.shutdown(100);
  }
}

describe('registration with the coordinator', () => {
  const registry = new FakeRegistry();
  beforeAll(() => registry.start());
  afterAll(() => registry.stop());

  it('registers (retrying), heartbeats, registers again after NOT_FOUND, deregisters on stop', async () => {
    registry.unavailableFor = 2;
    const worker = await startWorker(
      workerConfig({ coordinator: registry.address, name: 'worker-a', maxExperts: 2 }),
      { logger: quietLogger() },
    );
    try {
      await eventually(() => registry.registers.length === 1, 10_000, 'registration');
      expect(registry.unavailableFor).toBe(0);
      expect(registry.registers[0]).toMatchObject({
        address: worker.address,
        name: 'worker-a',
        capacity: { maxExperts: 2 },
        version: '0.1.0',
        device: { engine: worker.engine.backend },
      });
      await eventually(() => registry.heartbeats.length >= 2, 5_000, 'heartbeats');
      expect(registry.heartbeats[0]).toMatchObject({
        workerId: 'w-1',
        load: { expertIds: [], inflightCalls: 0 },
      });
      expect(registry.heartbeats[1]!.load!.busyFraction).toBeGreaterThanOrEqual(0);

      registry.forgetNext = true;
      await eventually(() => registry.registers.length === 2, 5_000, 're-registration');
      await eventually(
        () => registry.heartbeats.some((h) => h.workerId === 'w-2'),
        5_000,
        'heartbeat as w-2',
      );
      expect(worker.registration!.workerId).toBe('w-2');
    } finally {
      await worker.stop();
    }
    expect(registry.deregisters).toEqual([{ workerId: 'w-2' }]);
    const beats = registry.heartbeats.length;
    await new Promise((r) => setTimeout(r, 250));
    expect(registry.heartbeats.length).toBe(beats);
  });

  it('runs as a process: logs its address, serves health, deregisters and exits 0 on SIGTERM', async () => {
    const before = registry.deregisters.length;
    const worker = spawnWorker(['--coordinator', registry.address, '--name', 'proc'], {
      LETHE_MAX_EXPERTS: '5',
    });
    try {
      const listening = await worker.waitForLog('worker listening');
      expect(listening['address']).toMatch(/^127\.0\.0\.1:\d+$/);
      await eventually(() => worker.ready().endsWith('\n'), 5_000, 'the ready line');
      expect(JSON.parse(worker.ready())).toEqual({ address: listening['address'] });
      await worker.waitForLog('registered with coordinator');
      const registered = registry.registers.find((r) => r.name === 'proc')!;
      expect(registered).toMatchObject({
        address: listening['address'],
        capacity: { maxExperts: 5 },
      });
      const health = new grpc.Client(
        listening['address'] as string,
        grpc.credentials.createInsecure(),
      );
      await new Promise<void>((resolve, reject) =>
        health.waitForReady(Date.now() + 5_000, (e) => (e ? reject(e) : resolve())),
      );
      health.close();
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
      expect(registry.deregisters.length).toBe(before + 1);
      expect(worker.lines.every((l) => typeof l['level'] === 'number')).toBe(true);
    } finally {
      worker.child.kill('SIGKILL');
    }
  });

  it('exits 2 with one line naming the key of a bad value', async () => {
    const bad = spawnWorker(['--port', 'http']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr().trim().split('\n')).toHaveLength(1);
    expect(bad.stderr()).toMatch(
      /^lethe-worker: error: invalid port \(--port \/ LETHE_WORKER_PORT\): expected an integer/,
    );
    expect(bad.lines).toEqual([]);
  });
});
