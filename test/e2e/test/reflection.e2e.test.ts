import * as grpc from '@grpc/grpc-js';
import { callByName, reflectServer } from '@lethe/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, startCluster, waitForWorkers } from '../src/cluster';

let cluster: Cluster;
let workerAddress: string;

beforeAll(async () => {
  cluster = await startCluster(1);
  await waitForWorkers(cluster.client, 1);
  const listening = await cluster.workers[0]!.waitFor('worker listening');
  workerAddress = String(listening['address']);
});
afterAll(async () => {
  await cluster?.stop();
});

describe('server reflection, from a client that knows no .proto file', () => {
  it("lists the coordinator port's own services, resolves their files and calls by name", async () => {
    const server = await reflectServer(cluster.address);
    try {
      expect(server.services).toEqual([
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
        'lethe.v1.Coordinator',
        'lethe.v1.Registry',
      ]);
      // lethe.v1.Worker is defined in worker.proto with the Registry, but not served here.
      expect(await server.symbolErrorCode('lethe.v1.Worker')).toBe(grpc.status.NOT_FOUND);
      expect(server.unresolved).toEqual([]);
      expect(server.strictProblems).toEqual([]);
      expect([...server.files.keys()].sort()).toEqual([
        'google/protobuf/timestamp.proto',
        'grpc/health/v1/health.proto',
        'grpc/reflection/v1/reflection.proto',
        'lethe/v1/common.proto',
        'lethe/v1/coordinator.proto',
        'lethe/v1/worker.proto',
      ]);
      // Every type every method names resolves in the pool.
      for (const name of server.services) {
        for (const method of Object.values(server.pool.lookupService(name).methods)) {
          method.resolve();
          expect(method.resolvedRequestType, `${name}.${method.name}`).toBeTruthy();
          expect(method.resolvedResponseType, `${name}.${method.name}`).toBeTruthy();
        }
      }
      const health = await callByName(server.client('grpc.health.v1.Health'), 'Check', {
        service: 'lethe.v1.Coordinator',
      });
      expect(health).toEqual({ status: 'SERVING' });
      const workers = await callByName(server.client('lethe.v1.Coordinator'), 'ListWorkers', {});
      const listed = workers['workers'] as { address: string; state: string }[];
      expect(listed.map((w) => [w.address, w.state])).toEqual([
        [workerAddress, 'WORKER_STATE_ALIVE'],
      ]);
      // A message with a Timestamp (from google/protobuf/timestamp.proto) decodes too.
      expect(listed[0]).toHaveProperty('last_heartbeat.seconds');
    } finally {
      server.close();
    }
  });

  it("lists the worker port's own services and calls a Worker method by name", async () => {
    const server = await reflectServer(workerAddress);
    try {
      expect(server.services).toEqual([
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
        'lethe.v1.Worker',
      ]);
      expect(await server.symbolErrorCode('lethe.v1.Coordinator')).toBe(grpc.status.NOT_FOUND);
      expect(await server.symbolErrorCode('lethe.v1.Registry')).toBe(grpc.status.NOT_FOUND);
      expect(server.unresolved).toEqual([]);
      expect(server.strictProblems).toEqual([]);
      expect([...server.files.keys()].sort()).toEqual([
        'grpc/health/v1/health.proto',
        'grpc/reflection/v1/reflection.proto',
        'lethe/v1/common.proto',
        'lethe/v1/worker.proto',
      ]);
      const health = await callByName(server.client('grpc.health.v1.Health'), 'Check', {
        service: 'lethe.v1.Worker',
      });
      expect(health).toEqual({ status: 'SERVING' });
      // Release of nothing on the serving copy: the enum by its name, the answer decoded.
      const released = await callByName(server.client('lethe.v1.Worker'), 'Release', {
        copy: 'EXPERT_COPY_SERVING',
        all: true,
      });
      expect(released).toEqual({ released_expert_ids: [], released_dataset_keys: [] });
    } finally {
      server.close();
    }
  });
});
