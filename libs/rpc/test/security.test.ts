import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CoordinatorClient,
  CoordinatorService,
  Job,
  type JobEvent,
  RegistryClient,
  type RegistryServer,
  RegistryService,
} from '@lethe/proto';
import {
  authorizeService,
  bearerToken,
  bearerTokenInterceptor,
  callerOf,
  callUnary,
  guardService,
  type Identity,
  peerCertificate,
  readTlsMaterial,
  type Refusal,
  type RunningServer,
  serverStreamHandler,
  startGrpcServer,
  TlsFileError,
  type TlsMaterial,
  tlsChannelCredentials,
  tlsServerCredentials,
  unaryHandler,
  unauthenticated,
} from '../src';

const DEV_CA = resolve(__dirname, '..', '..', '..', 'scripts', 'dev-ca.sh');
const dir = mkdtempSync(join(tmpdir(), 'lethe-rpc-tls-'));
const material = (name: string): TlsMaterial =>
  readTlsMaterial({
    cert: join(dir, `${name}.pem`),
    key: join(dir, `${name}-key.pem`),
    ca: join(dir, 'ca.pem'),
  });

beforeAll(() => {
  execFileSync('bash', [DEV_CA, '--out', dir, '--worker', 'w1', '--client', 'alice'], {
    stdio: 'ignore',
  });
  // A second CA, whose certificates the first one does not vouch for.
  execFileSync('bash', [DEV_CA, '--out', join(dir, 'other'), '--worker', 'rogue'], {
    stdio: 'ignore',
  });
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

const register = { address: '127.0.0.1:1', name: 'x', version: '1', capacity: { maxExperts: 1 } };

/** A Registry that answers with the CN of the caller's verified client certificate. */
function echoRegistry(): RegistryServer {
  return {
    register: unaryHandler(async (_request, call) => ({
      workerId: peerCertificate(call)?.commonName ?? 'anonymous',
      heartbeatIntervalMs: 1,
      heartbeatTimeoutMs: 2,
    })),
    heartbeat: unaryHandler(async () => ({
      ack: true,
      heartbeatIntervalMs: 1,
      assignedExpertIds: [],
      hint: undefined,
    })),
    deregister: unaryHandler(async () => ({})),
  };
}

describe('readTlsMaterial', () => {
  it('reads a certificate, its key and the CA', () => {
    const read = material('w1');
    expect(read.cert.toString()).toMatch(/BEGIN CERTIFICATE/);
    expect(read.key.toString()).toMatch(/PRIVATE KEY/);
  });

  it('names the file that is missing, unparseable or not the pair of the certificate', () => {
    const fail = (files: Partial<Record<'cert' | 'key' | 'ca', string>>): TlsFileError => {
      try {
        readTlsMaterial({
          cert: join(dir, 'w1.pem'),
          key: join(dir, 'w1-key.pem'),
          ca: join(dir, 'ca.pem'),
          ...files,
        });
      } catch (error) {
        return error as TlsFileError;
      }
      throw new Error('no error');
    };
    expect(fail({ cert: join(dir, 'nope.pem') })).toMatchObject({
      field: 'cert',
      message: `cannot read ${join(dir, 'nope.pem')}: ENOENT`,
    });
    writeFileSync(join(dir, 'garbage.pem'), 'not a pem');
    expect(fail({ ca: join(dir, 'garbage.pem') })).toMatchObject({
      field: 'ca',
      message: expect.stringMatching(/does not hold PEM CA certificates$/) as unknown,
    });
    const mismatch = fail({ key: join(dir, 'alice-key.pem') });
    expect(mismatch).toBeInstanceOf(TlsFileError);
    expect(mismatch).toMatchObject({
      field: 'key',
      message: expect.stringMatching(/not the private key/) as unknown,
    });
    // The message names files, never their contents.
    expect(mismatch.message).not.toMatch(/BEGIN/);
  });
});

describe('TLS servers', () => {
  let requesting: RunningServer;
  let requiring: RunningServer;
  const clients: grpc.Client[] = [];
  const registryClient = (address: string, credentials: grpc.ChannelCredentials) => {
    const client = new RegistryClient(address, credentials);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    const server = material('coordinator');
    requesting = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [
        {
          definition: RegistryService,
          implementation: guardService(RegistryService, echoRegistry(), (call) => {
            if (!peerCertificate(call)) throw unauthenticated('a client certificate is required');
          }),
        },
      ],
      healthServices: [],
      credentials: tlsServerCredentials(server, 'request'),
    });
    requiring = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [{ definition: RegistryService, implementation: echoRegistry() }],
      healthServices: [],
      credentials: tlsServerCredentials(server, 'require'),
    });
  });
  afterAll(async () => {
    clients.forEach((c) => c.close());
    await Promise.all([requesting.shutdown(100), requiring.shutdown(100)]);
  });

  it('requesting client certificates: a verified one names the caller, none is refused per call', async () => {
    const w1 = material('w1');
    const withCert = registryClient(requesting.address, tlsChannelCredentials(w1));
    expect((await callUnary(withCert, withCert.register, register)).workerId).toBe('w1');
    const noCert = registryClient(requesting.address, tlsChannelCredentials({ ca: w1.ca }));
    expect(await code(callUnary(noCert, noCert.register, register))).toBe('UNAUTHENTICATED');
    // A certificate from another CA is not verified, so it counts as none.
    const rogue = readTlsMaterial({
      cert: join(dir, 'other', 'rogue.pem'),
      key: join(dir, 'other', 'rogue-key.pem'),
      ca: join(dir, 'ca.pem'),
    });
    const foreign = registryClient(requesting.address, tlsChannelCredentials(rogue));
    expect(await code(callUnary(foreign, foreign.register, register))).toBe('UNAUTHENTICATED');
  });

  it('a plaintext client cannot talk to a TLS server', async () => {
    const plain = registryClient(requesting.address, grpc.credentials.createInsecure());
    expect(await code(callUnary(plain, plain.register, register, { deadlineMs: 3_000 }))).toBe(
      'UNAVAILABLE',
    );
  });

  it('requiring client certificates: no connection without one the CA signed', async () => {
    const w1 = material('w1');
    const withCert = registryClient(requiring.address, tlsChannelCredentials(w1));
    expect((await callUnary(withCert, withCert.register, register)).workerId).toBe('w1');
    const noCert = registryClient(requiring.address, tlsChannelCredentials({ ca: w1.ca }));
    expect(await code(callUnary(noCert, noCert.register, register, { deadlineMs: 3_000 }))).toBe(
      'UNAVAILABLE',
    );
  });

  it('a client that does not trust the server CA cannot connect', async () => {
    const other = readTlsMaterial({
      cert: join(dir, 'other', 'rogue.pem'),
      key: join(dir, 'other', 'rogue-key.pem'),
      ca: join(dir, 'other', 'ca.pem'),
    });
    const client = registryClient(requiring.address, tlsChannelCredentials(other));
    expect(await code(callUnary(client, client.register, register, { deadlineMs: 3_000 }))).toBe(
      'UNAVAILABLE',
    );
  });
});

describe('authorizeService', () => {
  const tokens: Record<string, Identity> = {
    'admin-token': { subject: 'alice', role: 'admin', via: 'token' },
    'viewer-token': { subject: 'bob', role: 'viewer', via: 'token' },
  };
  const refusals: Refusal[] = [];
  const seen: (Identity | undefined)[] = [];
  let running: RunningServer;
  const clients: grpc.Client[] = [];
  const client = (token?: string): CoordinatorClient => {
    const c = new CoordinatorClient(running.address, grpc.credentials.createInsecure(), {
      interceptors: token === undefined ? [] : [bearerTokenInterceptor(token)],
    });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    const implementation = authorizeService(
      CoordinatorService,
      {
        getJob: unaryHandler(async ({ jobId }: { jobId: string }, call) => {
          seen.push(callerOf(call));
          return Job.fromPartial({ jobId });
        }),
        cancelJob: unaryHandler(async ({ jobId }: { jobId: string }) => Job.fromPartial({ jobId })),
        watchJob: serverStreamHandler<{ jobId: string }, JobEvent>(async ({ jobId }, call) => {
          call.write({ jobId, sequence: 1, event: undefined });
        }),
      },
      {
        authenticate: (call) => {
          const token = bearerToken(call.metadata);
          if (token === undefined) return undefined;
          const identity = tokens[token];
          if (!identity) throw unauthenticated('invalid bearer token');
          return identity;
        },
        roles: { getJob: ['admin', 'viewer'], watchJob: ['admin', 'viewer'], cancelJob: ['admin'] },
        onRefused: async (refusal) => {
          await new Promise((r) => setTimeout(r, 10));
          refusals.push(refusal);
        },
      },
    );
    running = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [{ definition: CoordinatorService, implementation }],
      healthServices: [],
    });
  });
  afterAll(async () => {
    clients.forEach((c) => c.close());
    await running.shutdown(100);
  });

  it('refuses a call without credentials or with a bad token: UNAUTHENTICATED', async () => {
    refusals.length = 0;
    const anonymous = client();
    expect(await code(callUnary(anonymous, anonymous.getJob, { jobId: 'j' }))).toBe(
      'UNAUTHENTICATED',
    );
    const forged = client('forged');
    expect(await code(callUnary(forged, forged.getJob, { jobId: 'j' }))).toBe('UNAUTHENTICATED');
    // The refusal was reported (and awaited) before the call ended.
    expect(refusals.map((r) => [r.method, r.identity, r.error.code])).toEqual([
      ['getJob', undefined, grpc.status.UNAUTHENTICATED],
      ['getJob', undefined, grpc.status.UNAUTHENTICATED],
    ]);
    expect(refusals[1]!.error.message).not.toContain('forged');
  });

  it('checks the role per method: PERMISSION_DENIED, else the handler sees the caller', async () => {
    const viewer = client('viewer-token');
    const admin = client('admin-token');
    expect(await code(callUnary(viewer, viewer.cancelJob, { jobId: 'j' }))).toBe(
      'PERMISSION_DENIED',
    );
    const denied = await callUnary(viewer, viewer.cancelJob, { jobId: 'j' }).catch(
      (e: grpc.ServiceError) => e,
    );
    expect((denied as grpc.ServiceError).details).toBe(
      'bob (role viewer) may not call CancelJob: it needs role admin',
    );
    expect(await code(callUnary(admin, admin.cancelJob, { jobId: 'j' }))).toBe('OK');
    seen.length = 0;
    expect(await code(callUnary(viewer, viewer.getJob, { jobId: 'j' }))).toBe('OK');
    expect(seen).toEqual([tokens['viewer-token']]);
  });

  it('guards server streams too', async () => {
    const watch = (c: CoordinatorClient) =>
      new Promise<string>((done) => {
        const stream = c.watchJob({ jobId: 'j', includeLogs: false });
        stream.on('data', () => undefined);
        stream.on('end', () => done('OK'));
        stream.on('error', (e: grpc.ServiceError) => done(grpc.status[e.code]!));
      });
    expect(await watch(client())).toBe('UNAUTHENTICATED');
    expect(await watch(client('viewer-token'))).toBe('OK');
  });

  it('parses the authorization metadata strictly', () => {
    const metadata = new grpc.Metadata();
    expect(bearerToken(metadata)).toBeUndefined();
    metadata.set('authorization', 'Bearer abc');
    expect(bearerToken(metadata)).toBe('abc');
    metadata.set('authorization', 'Basic abc');
    expect(() => bearerToken(metadata)).toThrow(/malformed authorization/);
  });
});
