import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type RegistryServer, RegistryService, WorkerClient, ExpertCopy } from '@lethe/proto';
import {
  callUnary,
  peerCertificate,
  readTlsMaterial,
  type RunningServer,
  startGrpcServer,
  type TlsMaterial,
  tlsChannelCredentials,
  tlsServerCredentials,
  unaryHandler,
} from '@lethe/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseWorkerConfig } from '../src/config';
import { type RunningWorker, startWorker } from '../src/worker';
import { eventually, quietLogger, workerConfig } from './fixtures';

const DEV_CA = resolve(__dirname, '..', '..', '..', 'scripts', 'dev-ca.sh');
const dir = mkdtempSync(join(tmpdir(), 'lethe-worker-tls-'));
const file = (name: string): string => join(dir, name);
const material = (name: string): TlsMaterial =>
  readTlsMaterial({ cert: file(`${name}.pem`), key: file(`${name}-key.pem`), ca: file('ca.pem') });

beforeAll(() => {
  execFileSync('bash', [DEV_CA, '--out', dir, '--worker', 'w1'], { stdio: 'ignore' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const code = async (call: Promise<unknown>): Promise<string> => {
  try {
    await call;
    return 'OK';
  } catch (error) {
    return grpc.status[(error as grpc.ServiceError).code] ?? String(error);
  }
};

describe('worker TLS configuration', () => {
  it('takes the three files from flags or LETHE_TLS_*', () => {
    const config = parseWorkerConfig(['--tls-cert', file('w1.pem')], {
      LETHE_TLS_KEY: file('w1-key.pem'),
      LETHE_TLS_CA: file('ca.pem'),
    });
    expect(config).toMatchObject({
      tlsCert: file('w1.pem'),
      tlsKey: file('w1-key.pem'),
      tlsCa: file('ca.pem'),
    });
  });

  it.each([
    [
      ['--tls-cert', '/x.pem'],
      {},
      /^invalid tlsKey \(--tls-key \/ LETHE_TLS_KEY\): required with TLS/,
    ],
    [
      ['--tls-key', '/nope/key.pem'],
      { LETHE_TLS_CERT: '/nope/cert.pem', LETHE_TLS_CA: '/nope/ca.pem' },
      /^invalid tlsCert \(--tls-cert \/ LETHE_TLS_CERT\): cannot read \/nope\/cert\.pem: ENOENT$/,
    ],
  ])('names the key of a bad TLS setting: %j %j', (args, env, message) => {
    expect(() => parseWorkerConfig(args, env)).toThrow(ConfigError);
    expect(() => parseWorkerConfig(args, env)).toThrow(message);
  });

  it('refuses a key that is not the certificate’s', () => {
    expect(() =>
      parseWorkerConfig(['--tls-cert', file('w1.pem'), '--tls-key', file('coordinator-key.pem')], {
        LETHE_TLS_CA: file('ca.pem'),
      }),
    ).toThrow(/^invalid tlsKey \(--tls-key \/ LETHE_TLS_KEY\): .*is not the private key of/);
  });
});

describe('a worker with mutual TLS', () => {
  let registry: RunningServer;
  let worker: RunningWorker;
  const registeredBy: string[] = [];
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    // The coordinator's Registry as it runs with TLS: it asks for a client certificate.
    const implementation: RegistryServer = {
      register: unaryHandler(async (_request, call) => {
        registeredBy.push(peerCertificate(call)?.commonName ?? 'anonymous');
        return { workerId: 'w-1', heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1_000 };
      }),
      heartbeat: unaryHandler(async () => ({
        ack: true,
        heartbeatIntervalMs: 100,
        assignedExpertIds: [],
        hint: undefined,
      })),
      deregister: unaryHandler(async () => ({})),
    };
    registry = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [{ definition: RegistryService, implementation }],
      healthServices: [],
      credentials: tlsServerCredentials(material('coordinator'), 'request'),
    });
    worker = await startWorker(
      workerConfig({
        coordinator: `localhost:${registry.port}`,
        tlsCert: file('w1.pem'),
        tlsKey: file('w1-key.pem'),
        tlsCa: file('ca.pem'),
      }),
      { logger: quietLogger() },
    );
  });
  afterAll(async () => {
    clients.forEach((c) => c.close());
    await worker?.stop();
    await registry?.shutdown(100);
  });

  const client = (credentials: grpc.ChannelCredentials): WorkerClient => {
    const c = new WorkerClient(worker.address, credentials);
    clients.push(c);
    return c;
  };
  const release = (c: WorkerClient) =>
    callUnary(
      c,
      c.release,
      { copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED, expertIds: [], datasetKeys: [], all: true },
      { deadlineMs: 3_000 },
    );

  it('registers with its client certificate', async () => {
    await eventually(() => registeredBy.length > 0, 10_000, 'registration');
    expect(registeredBy[0]).toBe('w1');
  });

  it('serves a caller with a certificate from the cluster CA, and no one else', async () => {
    expect(await code(release(client(tlsChannelCredentials(material('coordinator')))))).toBe('OK');
    expect(await code(release(client(tlsChannelCredentials({ ca: material('w1').ca }))))).toBe(
      'UNAVAILABLE',
    );
    expect(await code(release(client(grpc.credentials.createInsecure())))).toBe('UNAVAILABLE');
  });
});
