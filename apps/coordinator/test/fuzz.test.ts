import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { LETHE_DESCRIPTOR_SET } from '@lethe/proto';
import { LocalDirStore, ManifestStore } from '@lethe/store';
import { service as healthService } from 'grpc-health-check';
import pino from 'pino';
import * as protobuf from 'protobufjs';
import { FileDescriptorSet } from 'protobufjs/ext/descriptor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCoordinatorConfig } from '../src/config/coordinator-config';
import { CoordinatorModule } from '../src/coordinator.module';
import { GrpcServerService } from '../src/grpc/grpc-server.service';
import { JobsService } from '../src/jobs/jobs.service';

/**
 * A seeded fuzzer over every field of every public RPC, on loopback: requests are drawn from
 * the request types' descriptors (so a new field is fuzzed as soon as it exists) with values
 * at and beyond the documented bounds, and each answer must carry a status the contract allows
 * for that RPC. A refused request must leave the store as it was (the audit log, which records
 * every SubmitForget refusal, aside), and health must still say SERVING at the end.
 * LETHE_FUZZ_SEED and LETHE_FUZZ_ROUNDS (per RPC) change the draw; a failure names its seed.
 */

const SEED = Number(process.env['LETHE_FUZZ_SEED'] ?? 12);
const ROUNDS = Number(process.env['LETHE_FUZZ_ROUNDS'] ?? 40);
const CLASSES = ['square', 'disc', 'cross'];

const S = grpc.status;
const ALLOWED: Record<string, readonly grpc.status[]> = {
  StartTraining: [
    S.OK,
    S.INVALID_ARGUMENT,
    S.NOT_FOUND,
    S.FAILED_PRECONDITION,
    S.ALREADY_EXISTS,
    S.UNIMPLEMENTED,
  ],
  WatchJob: [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND],
  GetJob: [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND],
  CancelJob: [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.FAILED_PRECONDITION],
  SubmitForget: [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.FAILED_PRECONDITION, S.ALREADY_EXISTS],
  GetReceipt: [S.INVALID_ARGUMENT, S.NOT_FOUND, S.FAILED_PRECONDITION],
  ListReceipts: [S.OK, S.INVALID_ARGUMENT],
  // No worker is registered: what reaches the experts is UNAVAILABLE, as the contract allows.
  Evaluate: [
    S.OK,
    S.INVALID_ARGUMENT,
    S.NOT_FOUND,
    S.FAILED_PRECONDITION,
    S.UNIMPLEMENTED,
    S.UNAVAILABLE,
  ],
  Predict: [S.OK, S.INVALID_ARGUMENT, S.FAILED_PRECONDITION, S.UNAVAILABLE],
  ListSamples: [S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.FAILED_PRECONDITION],
  ListExperts: [S.OK],
  ListWorkers: [S.OK],
};

const image = { data: Buffer.alloc(32 * 32 * 3, 90), height: 32, width: 32, channels: 3 };
/**
 * A valid request per RPC (field names as in the .proto), so that mutating a field or two
 * reaches the checks behind the first one; `n` keeps request ids apart.
 */
const BASELINES: Record<string, (n: number) => Record<string, unknown>> = {
  StartTraining: (n) => ({
    request_id: `fz-train-${n}`,
    mode: 1,
    dataset: { uri: 'cifar10:/nonexistent' },
    preset: 'tiny',
  }),
  WatchJob: () => ({ job_id: 'job-000001' }),
  GetJob: () => ({ job_id: 'job-000001' }),
  CancelJob: () => ({ job_id: 'job-000001' }),
  SubmitForget: (n) => ({ request_id: `fz-forget-${n}`, class_name: 'disc' }),
  GetReceipt: () => ({ request_id: 'fz-forget-1' }),
  ListReceipts: () => ({ page_size: 10 }),
  Evaluate: () => ({}),
  Predict: () => ({ images: [image] }),
  ListSamples: () => ({ class_name: 'disc' }),
  ListExperts: () => ({}),
  ListWorkers: () => ({}),
};

/** A baseline with one or two fields replaced by random values (or a wholly random request). */
function mutant(
  method: string,
  type: protobuf.Type,
  n: number,
  next: () => number,
): Record<string, unknown> {
  if (next() < 0.25) return message(type, next);
  const request = BASELINES[method]?.(n) ?? {};
  const random = message(type, next);
  for (let k = Math.floor(next() * 3); k > 0; k--) {
    const field = type.fieldsArray[Math.floor(next() * type.fieldsArray.length)];
    if (!field) break;
    if (field.partOf) {
      // A oneof member replaces its siblings.
      for (const sibling of field.partOf.fieldsArray) request[sibling.name] = undefined;
    }
    // Undefined is unset: protobufjs' fromObject skips it.
    request[field.name] = random[field.name];
  }
  return request;
}

/** mulberry32: a small seeded generator, so that a failing draw can be replayed. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FLOATS = [0, -0, 1, -1, 0.5, 1e-4, 3, 100, 100.5, 1000, 1001, 1e300, 1e-300];
const SPECIAL_FLOATS = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
const INTS = [
  0,
  1,
  2,
  3,
  5,
  64,
  65,
  100,
  101,
  500,
  501,
  1000,
  1001,
  4096,
  4097,
  2 ** 31,
  2 ** 32 - 1,
];
const STRINGS = [
  '',
  'a',
  ...CLASSES,
  'giraffe',
  'r-1',
  'Bad Id!',
  'x'.repeat(64),
  'x'.repeat(65),
  'x'.repeat(300),
  'x'.repeat(20_000),
  '\u0000',
  'é😀',
  'cifar10:/nonexistent',
  'cifar10:',
  'folder:/nonexistent',
  'nope:/x',
  'coverage:0.8',
  'coverage:2',
  'top:0',
  'top:1',
  'tiny',
  'offset:5',
  'offset:-1',
  'job-000001',
  'job-999999',
  'cifar10:train:1',
  'cifar10:test:1',
  'synthetic:train:1',
];

/** A random value of one field, per its descriptor type. */
function fieldValue(field: protobuf.Field, next: () => number, depth: number): unknown {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) {
    const values = Object.values(resolved.values);
    return next() < 0.8 ? pick(values) : pick([77, 9, -1, 2 ** 31 - 1]);
  }
  if (resolved instanceof protobuf.Type) return message(resolved, next, depth + 1);
  switch (field.type) {
    case 'double':
    case 'float':
      return next() < 0.25
        ? pick(SPECIAL_FLOATS)
        : next() < 0.7
          ? pick(FLOATS)
          : next() * 2000 - 1000;
    case 'uint32':
    case 'uint64':
    case 'int32':
    case 'int64':
      return next() < 0.8 ? pick(INTS) : Math.floor(next() * 10_000);
    case 'bool':
      return next() < 0.5;
    case 'string':
      return pick(STRINGS);
    case 'bytes':
      return Buffer.alloc(pick([0, 1, 12, 3 * 32 * 32, 3 * 32 * 32 + 1]), Math.floor(next() * 256));
    default:
      throw new Error(`no generator for ${field.type}`);
  }
}

/** A random message: each field set or not, at most one member of each oneof. */
function message(type: protobuf.Type, next: () => number, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (depth > 3) return out;
  const inOneof = new Set(type.oneofsArray.flatMap((o) => o.fieldsArray.map((f) => f.name)));
  for (const oneof of type.oneofsArray) {
    // Synthetic oneofs of proto3 `optional` fields hold one field: set it or not.
    if (next() < 0.3) continue;
    const field = oneof.fieldsArray[Math.floor(next() * oneof.fieldsArray.length)]!;
    out[field.name] = fieldValue(field, next, depth);
  }
  for (const field of type.fieldsArray) {
    if (inOneof.has(field.name) || next() < 0.4) continue;
    if (field.repeated) {
      const count = next() < 0.05 ? 600 : Math.floor(next() * 4);
      out[field.name] = Array.from({ length: count }, () => fieldValue(field, next, depth));
    } else out[field.name] = fieldValue(field, next, depth);
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'lethe-coordinator-fuzz-'));
const storeDir = join(dir, 'store');
let app: INestApplicationContext;
let address: string;

/** Resolves once no job is queued or running. */
async function idle(): Promise<void> {
  const jobs = app.get(JobsService);
  while (jobs.active().length > 0) await new Promise((resolve) => setTimeout(resolve, 5));
}

/** Every stored object but the audit log, with its hash. */
async function storeState(): Promise<string[]> {
  const objects = await new LocalDirStore(storeDir).list('');
  return objects.filter((o) => !o.key.startsWith('audit/')).map((o) => `${o.key} ${o.sha256}`);
}

beforeAll(async () => {
  // A published model card whose training data does not exist: forget requests get through
  // admission (and their jobs fail), serving has no workers.
  await new ManifestStore(new LocalDirStore(storeDir)).update((draft) => {
    draft.attributes['model'] = {
      classes: CLASSES,
      config: {
        preset: 'tiny',
        experts: 2,
        topK: 1,
        numClasses: 3,
        inputShape: [32, 32, 3],
        routerNoise: 1,
        balanceWeight: 0.1,
        specializeWeight: 1,
        seed: 0,
      },
    };
    draft.attributes['training'] = { mode: 'joint', dataset: `cifar10:${dir}/no-data`, seed: 0 };
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
  address = app.get(GrpcServerService).address!;
});

afterAll(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe(`fuzzing the Coordinator API (seed ${SEED}, ${ROUNDS} requests per RPC)`, () => {
  it('answers every request with a status its contract allows, and refusals change nothing', async () => {
    const pool = (
      protobuf.Root as unknown as { fromDescriptor(set: protobuf.Message): protobuf.Root }
    ).fromDescriptor(FileDescriptorSet.decode(LETHE_DESCRIPTOR_SET));
    pool.resolveAll();
    const service = pool.lookupService('lethe.v1.Coordinator');
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    const next = generator(SEED);
    const bad: string[] = [];
    const stored = { refusals: 0, changed: [] as string[] };
    for (const method of service.methodsArray) {
      const allowed = ALLOWED[method.name];
      expect(allowed, `${method.name} has no allowed codes in the fuzzer`).toBeDefined();
      const type = (method.resolve() as protobuf.Method).resolvedRequestType!;
      for (let round = 0; round < ROUNDS; round++) {
        const request = mutant(method.name, type, round, next);
        const bytes = Buffer.from(type.encode(type.fromObject(request)).finish());
        // Jobs accepted earlier write to the store (and fail: no data); let them end first.
        await idle();
        const before = await storeState();
        const { code, details } = await call(client, method, bytes);
        if (!allowed!.includes(code)) {
          bad.push(`${method.name} → ${grpc.status[code]} (${details}): ${shown(request)}`);
        } else if (code === S.OK && nonFinite(request)) {
          // The contract makes every float finite: such a request must never be accepted.
          bad.push(`${method.name} accepted a non-finite number: ${shown(request)}`);
        }
        if (code !== grpc.status.OK) {
          stored.refusals++;
          const after = await storeState();
          if (after.join('\n') !== before.join('\n')) {
            stored.changed.push(`${method.name} ${grpc.status[code]}: ${shown(request)}`);
          }
        }
      }
    }
    client.close();
    expect(bad, `seed ${SEED}`).toEqual([]);
    expect(stored.changed, `seed ${SEED}`).toEqual([]);
    expect(stored.refusals).toBeGreaterThan(ROUNDS);
    expect(await health(address)).toBe('SERVING');
  });
});

/** One call with raw request bytes; its status (streams: after the last message). */
function call(
  client: grpc.Client,
  method: protobuf.Method,
  bytes: Buffer,
): Promise<{ code: grpc.status; details: string }> {
  const path = `/lethe.v1.Coordinator/${method.name}`;
  const identity = (b: Buffer): Buffer => b;
  const deadline = Date.now() + 30_000;
  return new Promise((resolve) => {
    if (method.responseStream) {
      const stream = client.makeServerStreamRequest(path, identity, identity, bytes, {
        deadline,
      });
      stream.on('data', () => undefined);
      stream.on('status', ({ code, details }: grpc.StatusObject) => resolve({ code, details }));
      stream.on('error', () => undefined);
      return;
    }
    client.makeUnaryRequest(path, identity, identity, bytes, { deadline }, (error) =>
      resolve(error ? { code: error.code, details: error.details } : { code: S.OK, details: '' }),
    );
  });
}

/** Whether a NaN or an infinity is anywhere in the request. */
function nonFinite(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value);
  if (Buffer.isBuffer(value) || value === null || typeof value !== 'object') return false;
  return Object.values(value).some(nonFinite);
}

/** A request for a failure message: its JSON, long strings and buffers cut short. */
function shown(request: unknown): string {
  return JSON.stringify(request, (_key, value: unknown) => {
    if (typeof value === 'string' && value.length > 40)
      return `${value.slice(0, 40)}…(${value.length})`;
    if (Array.isArray(value) && value.length > 5) return `[${value.length} items]`;
    if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
    if (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer') {
      return `<${(value as { data: unknown[] }).data.length} bytes>`;
    }
    return value;
  });
}

function health(target: string): Promise<string> {
  const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
  const client = new Health(target, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    check(
      request: { service: string },
      callback: (error: grpc.ServiceError | null, response?: { status: string | number }) => void,
    ): void;
  };
  return new Promise((resolve, reject) =>
    client.check({ service: 'lethe.v1.Coordinator' }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolve(String(response!.status));
    }),
  );
}
