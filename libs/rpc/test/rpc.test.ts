import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CoordinatorClient,
  CoordinatorService,
  HEALTH_DESCRIPTOR_SET,
  type JobEvent,
  LETHE_DESCRIPTOR_SET,
  LogLevel,
  type RegisterRequest,
  RegistryClient,
  type RegistryServer,
  RegistryService,
  REFLECTION_DESCRIPTOR_SET,
} from '@lethe/proto';
import * as protobuf from 'protobufjs';
import {
  FileDescriptorProto,
  FileDescriptorSet,
  type IFileDescriptorProto,
} from 'protobufjs/ext/descriptor';
import {
  alreadyExists,
  backoffDelay,
  callUnary,
  isRetryable,
  notFound,
  RpcError,
  type RunningServer,
  serverStreamHandler,
  serviceError,
  splitHostPort,
  startGrpcServer,
  statusName,
  unaryHandler,
  unavailable,
} from '../src';

/** A grpc.reflection.v1 client: one request per stream, its first reply. */
function reflectionClient(address: string) {
  const root = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
  const pkg = grpc.loadPackageDefinition(
    protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
      includeDirs: [root],
      keepCase: true,
    }),
  ) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(
    address,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    ServerReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionReply>;
  };
  return {
    ask: (req: object): Promise<ReflectionReply> =>
      new Promise((resolve, reject) => {
        const stream = client.ServerReflectionInfo();
        stream.on('data', (reply: ReflectionReply) => {
          resolve(reply);
          stream.end();
        });
        stream.on('error', reject);
        stream.write(req);
      }),
    close: () => client.close(),
  };
}

interface ReflectionReply {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const request = (name: string): RegisterRequest => ({
  address: '127.0.0.1:1',
  name,
  version: '0.1.0',
  capacity: { maxExperts: 1 },
});

/** A fake Registry whose Register behaves according to the request's name. */
function fakeRegistry(log: { error: (obj: object, msg: string) => void }) {
  const attempts = new Map<string, number>();
  const registry: RegistryServer = {
    register: unaryHandler(async ({ name }) => {
      const n = (attempts.get(name) ?? 0) + 1;
      attempts.set(name, n);
      if (name === 'taken') throw alreadyExists(`name '${name}' is held by a live worker`);
      if (name === 'plain-error') throw new Error('disk on fire');
      if (name.startsWith('flaky-') && n <= Number(name.slice(6))) throw unavailable('warming up');
      if (name === 'down') throw unavailable('always down');
      if (name.startsWith('slow-')) await sleep(Number(name.slice(5)));
      return { workerId: `w-${name}`, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 5000 };
    }, log),
    heartbeat: unaryHandler(async () => {
      throw notFound('unknown worker');
    }, log),
    deregister: unaryHandler(async () => ({}), log),
  };
  return { registry, attempts };
}

function watchEvents(jobId: string, sequence: number): JobEvent {
  return {
    jobId,
    sequence,
    event: {
      $case: 'log',
      value: { level: LogLevel.LOG_LEVEL_INFO, source: 'test', text: `e${sequence}` },
    },
  };
}

describe('rpc server and client', () => {
  const log = { error: vi.fn() };
  const { registry, attempts } = fakeRegistry(log);
  let running: RunningServer;
  let client: RegistryClient;

  beforeAll(async () => {
    running = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [
        { definition: RegistryService, implementation: registry },
        {
          definition: CoordinatorService,
          implementation: {
            watchJob: serverStreamHandler<{ jobId: string }, JobEvent>(async ({ jobId }, call) => {
              call.write(watchEvents(jobId, 1));
              if (jobId === 'missing') throw notFound(`unknown job_id "${jobId}"`);
              call.write(watchEvents(jobId, 2));
            }, log),
          },
        },
      ],
      healthServices: ['lethe.v1.Registry'],
      reflection: [LETHE_DESCRIPTOR_SET, HEALTH_DESCRIPTOR_SET, REFLECTION_DESCRIPTOR_SET],
    });
    client = new RegistryClient(running.address, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client.close();
    await running.shutdown(100);
  });

  it('binds a free port and reports host:actualPort', () => {
    expect(running.port).toBeGreaterThan(0);
    expect(running.address).toBe(`127.0.0.1:${running.port}`);
  });

  it('answers with the handler result', async () => {
    const response = await callUnary(client, client.register, request('ok'));
    expect(response.workerId).toBe('w-ok');
  });

  it('maps an RpcError to its code and message', async () => {
    const error = await callUnary(client, client.register, request('taken')).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      code: grpc.status.ALREADY_EXISTS,
      details: "name 'taken' is held by a live worker",
    });
  });

  it('maps any other error to INTERNAL with its message and logs it', async () => {
    log.error.mockClear();
    const error = await callUnary(client, client.register, request('plain-error')).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: grpc.status.INTERNAL, details: 'disk on fire' });
    expect(log.error).toHaveBeenCalledOnce();
    expect(log.error.mock.calls[0]![0]).toMatchObject({ method: '/lethe.v1.Registry/Register' });
  });

  it('streams until the handler resolves, and ends with the status of its error', async () => {
    const coordinator = new CoordinatorClient(running.address, grpc.credentials.createInsecure());
    const collect = (jobId: string): Promise<{ events: JobEvent[]; error?: grpc.ServiceError }> =>
      new Promise((resolve) => {
        const events: JobEvent[] = [];
        const stream = coordinator.watchJob({ jobId, includeLogs: true });
        stream.on('data', (e: JobEvent) => events.push(e));
        stream.on('error', (error: grpc.ServiceError) => resolve({ events, error }));
        stream.on('end', () => resolve({ events }));
      });
    const ok = await collect('job-1');
    expect(ok.events.map((e) => e.sequence)).toEqual([1, 2]);
    expect(ok.error).toBeUndefined();
    const missing = await collect('missing');
    expect(missing.events.map((e) => e.sequence)).toEqual([1]);
    expect(missing.error).toMatchObject({ code: grpc.status.NOT_FOUND });
    coordinator.close();
  });

  it('serves the standard health service', async () => {
    const Health = grpc.makeGenericClientConstructor(
      healthService as unknown as grpc.ServiceDefinition,
      'Health',
    );
    const health = new Health(
      running.address,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      check(
        req: { service: string },
        cb: (e: grpc.ServiceError | null, r: { status: string }) => void,
      ): void;
    };
    const check = (service: string): Promise<string> =>
      new Promise((resolve, reject) =>
        health.check({ service }, (e, r) => (e ? reject(e) : resolve(r.status))),
      );
    expect(await check('')).toBe('SERVING');
    expect(await check('lethe.v1.Registry')).toBe('SERVING');
    running.setServing('lethe.v1.Registry', false);
    expect(await check('lethe.v1.Registry')).toBe('NOT_SERVING');
    running.setServing('lethe.v1.Registry', true);
    await expect(check('lethe.v1.Nope')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    health.close();
  });

  it('reflects exactly the services it serves, as files a descriptor pool loads', async () => {
    const reflection = reflectionClient(running.address);
    const names = (await reflection.ask({ list_services: '' })).list_services_response!.service;
    expect(names.map((s) => s.name).sort()).toEqual([
      'grpc.health.v1.Health',
      'grpc.reflection.v1.ServerReflection',
      'lethe.v1.Coordinator',
      'lethe.v1.Registry',
    ]);
    // lethe.v1.Worker shares worker.proto with the Registry, but is not served here.
    const hidden = await reflection.ask({ file_containing_symbol: 'lethe.v1.Worker' });
    expect(hidden.error_response?.error_code).toBe(grpc.status.NOT_FOUND);

    // The real files, with their imports: enough for a pool to resolve every type.
    const reply = await reflection.ask({ file_containing_symbol: 'lethe.v1.Registry.Register' });
    const files = reply.file_descriptor_response!.file_descriptor_proto.map(
      (bytes) => FileDescriptorProto.decode(bytes) as IFileDescriptorProto,
    );
    expect(files.map((f) => f.name).sort()).toEqual([
      'lethe/v1/common.proto',
      'lethe/v1/worker.proto',
    ]);
    const coordinator = await reflection.ask({ file_containing_symbol: 'lethe.v1.Coordinator' });
    const decoded = coordinator.file_descriptor_response!.file_descriptor_proto.map(
      (bytes) => FileDescriptorProto.decode(bytes) as IFileDescriptorProto,
    );
    expect(decoded.map((f) => f.name)).toEqual([
      'lethe/v1/coordinator.proto',
      'google/protobuf/timestamp.proto',
      'lethe/v1/common.proto',
    ]);
    expect(decoded[0]!.dependency).toEqual([
      'google/protobuf/timestamp.proto',
      'lethe/v1/common.proto',
    ]);
    files.push(decoded[0]!, decoded[1]!);
    // protobufjs/ext/descriptor adds Root.fromDescriptor at run time; its typings do not say so.
    const { fromDescriptor } = protobuf.Root as unknown as {
      fromDescriptor(set: protobuf.Message): protobuf.Root;
    };
    const pool = fromDescriptor(FileDescriptorSet.create({ file: files }));
    pool.resolveAll();

    // Call a method known only by name, through the pool's types.
    const method = pool
      .lookupService('lethe.v1.Registry')
      .methods['Register']!.resolve() as protobuf.Method;
    const request = method.resolvedRequestType!;
    const response = method.resolvedResponseType!;
    const generic = new grpc.Client(running.address, grpc.credentials.createInsecure());
    const answer = await new Promise<{ error: grpc.ServiceError | null; value?: unknown }>(
      (resolve) =>
        generic.makeUnaryRequest(
          '/lethe.v1.Registry/Register',
          (value: object) => Buffer.from(request.encode(request.fromObject(value)).finish()),
          (bytes: Buffer) => response.toObject(response.decode(bytes)),
          { address: '127.0.0.1:1', name: 'reflected', capacity: { max_experts: 1 } },
          (error, value) => resolve({ error, value }),
        ),
    );
    expect(answer.error).toBeNull();
    expect(answer.value).toEqual({
      worker_id: 'w-reflected',
      heartbeat_interval_ms: 1000,
      heartbeat_timeout_ms: 5000,
    });
    generic.close();
    reflection.close();
  });

  it('retries UNAVAILABLE with backoff, then succeeds', async () => {
    const started = Date.now();
    const response = await callUnary(client, client.register, request('flaky-2'), {
      retries: 3,
      backoffMs: 50,
    });
    expect(response.workerId).toBe('w-flaky-2');
    expect(attempts.get('flaky-2')).toBe(3);
    // Two waits: 50 ms then 100 ms, each at least 80% of that.
    expect(Date.now() - started).toBeGreaterThanOrEqual(115);
  });

  it('gives up after the retries with the last error', async () => {
    const error = await callUnary(client, client.register, request('down'), {
      retries: 2,
      backoffMs: 5,
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(attempts.get('down')).toBe(3);
  });

  it('does not retry other codes', async () => {
    attempts.delete('taken');
    await expect(
      callUnary(client, client.register, request('taken'), { retries: 3, backoffMs: 5 }),
    ).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS });
    expect(attempts.get('taken')).toBe(1);
  });

  it('surfaces DEADLINE_EXCEEDED', async () => {
    const started = Date.now();
    await expect(
      callUnary(client, client.register, request('slow-400'), { deadlineMs: 100 }),
    ).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    expect(Date.now() - started).toBeLessThan(350);
  });

  it('cancels on abort', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(
      callUnary(client, client.register, request('slow-400'), { signal: controller.signal }),
    ).rejects.toMatchObject({ code: grpc.status.CANCELLED });
  });
});

describe('graceful shutdown', () => {
  it('lets in-flight calls finish, then refuses new ones', async () => {
    const { registry } = fakeRegistry({ error: () => undefined });
    const running = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [{ definition: RegistryService, implementation: registry }],
      healthServices: [],
    });
    const client = new RegistryClient(running.address, grpc.credentials.createInsecure());
    await callUnary(client, client.register, request('warm'));
    const inflight = callUnary(client, client.register, request('slow-300'));
    await sleep(50);
    const started = Date.now();
    await running.shutdown(5_000);
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect(inflight).resolves.toMatchObject({ workerId: 'w-slow-300' });
    const fresh = new RegistryClient(running.address, grpc.credentials.createInsecure());
    await expect(
      callUnary(fresh, fresh.register, request('late'), { deadlineMs: 1_000 }),
    ).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    client.close();
    fresh.close();
  });

  it('cancels calls still running after the grace period', async () => {
    const { registry } = fakeRegistry({ error: () => undefined });
    const running = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [{ definition: RegistryService, implementation: registry }],
      healthServices: [],
    });
    const client = new RegistryClient(running.address, grpc.credentials.createInsecure());
    const stuck = callUnary(client, client.register, request('slow-3000')).catch((e: unknown) => e);
    await sleep(50);
    const started = Date.now();
    await running.shutdown(150);
    expect(Date.now() - started).toBeLessThan(1_000);
    const error = await stuck;
    expect(isRetryable(error) || (error as { code?: number }).code === grpc.status.CANCELLED).toBe(
      true,
    );
    client.close();
  });
});

describe('helpers', () => {
  it('names status codes', () => {
    expect(statusName(grpc.status.NOT_FOUND)).toBe('NOT_FOUND');
    expect(statusName(grpc.status.OK)).toBe('OK');
    expect(statusName(99 as grpc.status)).toBe('STATUS_99');
  });

  it('tells retryable errors', () => {
    expect(isRetryable(serviceError(grpc.status.UNAVAILABLE, 'x'))).toBe(true);
    expect(isRetryable(serviceError(grpc.status.DEADLINE_EXCEEDED, 'x'))).toBe(true);
    expect(isRetryable(serviceError(grpc.status.NOT_FOUND, 'x'))).toBe(false);
    expect(isRetryable(new RpcError(grpc.status.UNAVAILABLE, 'x'))).toBe(true);
    expect(isRetryable(new Error('x'))).toBe(false);
    expect(isRetryable(undefined)).toBe(false);
  });

  it('backs off exponentially with jitter, capped', () => {
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(2, 100, 2_000);
      expect(d).toBeGreaterThanOrEqual(320);
      expect(d).toBeLessThanOrEqual(480);
      expect(backoffDelay(10, 100, 2_000)).toBeLessThanOrEqual(2_400);
    }
  });

  it('splits host:port', () => {
    expect(splitHostPort('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(splitHostPort('[::1]:50051')).toEqual({ host: '[::1]', port: 50051 });
    expect(() => splitHostPort('nohost')).toThrow(/host:port/);
    expect(() => splitHostPort('h:99999')).toThrow(/host:port/);
  });
});

describe('unaryHandler status of known failures', () => {
  const answer = (error: unknown): Promise<Partial<grpc.StatusObject> | null> =>
    new Promise((resolve) =>
      unaryHandler(async () => {
        throw error;
      })(
        { request: {}, getPath: () => '/x' } as unknown as grpc.ServerUnaryCall<object, object>,
        (status) => resolve(status as Partial<grpc.StatusObject> | null),
      ),
    );

  it('answers DATA_LOSS for bytes that fail their hash, UNAVAILABLE for a full disk', async () => {
    const integrity = Object.assign(new Error('expert/1: sha256 mismatch'), {
      code: 'ERR_STORE_INTEGRITY',
    });
    expect((await answer(integrity))?.code).toBe(grpc.status.DATA_LOSS);
    const full = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    expect((await answer(full))?.code).toBe(grpc.status.UNAVAILABLE);
    expect((await answer(new Error('bug')))?.code).toBe(grpc.status.INTERNAL);
  });
});
