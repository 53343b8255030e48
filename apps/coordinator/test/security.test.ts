import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  CoordinatorClient,
  RegistryClient,
  SubmitForgetRequest,
  type WorkerServer,
  WorkerService,
  ExpertCopy,
} from '@lethe/proto';
import {
  bearerTokenInterceptor,
  callUnary,
  peerCertificate,
  readTlsMaterial,
  type RunningServer,
  startGrpcServer,
  type TlsMaterial,
  tlsChannelCredentials,
  tlsServerCredentials,
  unaryHandler,
  unimplemented,
} from '@lethe/rpc';
import { LocalDirStore, ManifestStore } from '@lethe/store';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditEntry, readAuditLog } from '../src/audit/audit-log';
import { loadCoordinatorConfig } from '../src/config/coordinator-config';
import { CoordinatorModule } from '../src/coordinator.module';
import { GrpcServerService } from '../src/grpc/grpc-server.service';
import { JobsService } from '../src/jobs/jobs.service';
import { WorkersService } from '../src/workers/workers.service';

const DEV_CA = resolve(__dirname, '..', '..', '..', 'scripts', 'dev-ca.sh');
const dir = mkdtempSync(join(tmpdir(), 'lethe-coordinator-security-'));
const tlsDir = join(dir, 'tls');
const storeDir = join(dir, 'store');
const ADMIN_TOKEN = `lethe_${randomBytes(32).toString('hex')}`;
const VIEWER_TOKEN = `lethe_${randomBytes(32).toString('hex')}`;
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Every line the coordinator logs, at trace level. */
const logLines: string[] = [];
let app: INestApplicationContext;
let address: string;
const clients: grpc.Client[] = [];

const material = (name: string): TlsMaterial =>
  readTlsMaterial({
    cert: join(tlsDir, `${name}.pem`),
    key: join(tlsDir, `${name}-key.pem`),
    ca: join(tlsDir, 'ca.pem'),
  });
const ca = (): Buffer => readFileSync(join(tlsDir, 'ca.pem'));

/** A client of the public API over TLS, with a token and/or a client certificate. */
function api(options: { token?: string; certificate?: string } = {}): CoordinatorClient {
  const credentials = tlsChannelCredentials(
    options.certificate ? material(options.certificate) : { ca: ca() },
  );
  const client = new CoordinatorClient(address, credentials, {
    interceptors: options.token ? [bearerTokenInterceptor(options.token)] : [],
  });
  clients.push(client);
  return client;
}

const code = async (call: Promise<unknown>): Promise<string> => {
  try {
    await call;
    return 'OK';
  } catch (error) {
    return grpc.status[(error as grpc.ServiceError).code] ?? String(error);
  }
};

const forget = (requestId: string, className = 'disc') =>
  SubmitForgetRequest.fromPartial({
    requestId,
    target: { $case: 'className', value: className },
    epochs: 1,
  });

beforeAll(async () => {
  execFileSync('bash', [DEV_CA, '--out', tlsDir, '--worker', 'w1', '--client', 'carol'], {
    stdio: 'ignore',
  });
  writeFileSync(
    join(dir, 'auth.json'),
    JSON.stringify({
      tokens: {
        [`sha256:${sha256(ADMIN_TOKEN)}`]: { subject: 'alice', role: 'admin' },
        [`sha256:${sha256(VIEWER_TOKEN)}`]: { subject: 'bob', role: 'viewer' },
      },
      certificates: { carol: { role: 'viewer' } },
    }),
  );
  const config = loadCoordinatorConfig(
    [
      '--port',
      '0',
      '--store',
      storeDir,
      '--db',
      join(dir, 'coordinator.sqlite'),
      '--tls-cert',
      join(tlsDir, 'coordinator.pem'),
      '--tls-key',
      join(tlsDir, 'coordinator-key.pem'),
      '--tls-ca',
      join(tlsDir, 'ca.pem'),
      '--auth-file',
      join(dir, 'auth.json'),
    ],
    {},
  );
  const capture = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  const log = pino({ level: 'trace' }, capture);
  app = await NestFactory.createApplicationContext(CoordinatorModule.forRoot(config, log), {
    logger: false,
  });
  await app.init();
  address = app.get(GrpcServerService).address!;
});

afterAll(async () => {
  clients.forEach((c) => c.close());
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the public API over TLS with an auth file', () => {
  it('refuses a call without credentials: UNAUTHENTICATED', async () => {
    const anonymous = api();
    expect(await code(callUnary(anonymous, anonymous.listWorkers, {}))).toBe('UNAUTHENTICATED');
    expect(await code(callUnary(anonymous, anonymous.submitForget, forget('anon-1')))).toBe(
      'UNAUTHENTICATED',
    );
    const forged = api({ token: 'lethe_not-a-token' });
    expect(await code(callUnary(forged, forged.listWorkers, {}))).toBe('UNAUTHENTICATED');
  });

  it('lets a viewer read but not forget: PERMISSION_DENIED', async () => {
    const viewer = api({ token: VIEWER_TOKEN });
    expect(await code(callUnary(viewer, viewer.listWorkers, {}))).toBe('OK');
    expect(await code(callUnary(viewer, viewer.listExperts, {}))).toBe('OK');
    expect(await code(callUnary(viewer, viewer.submitForget, forget('viewer-1')))).toBe(
      'PERMISSION_DENIED',
    );
    expect(await code(callUnary(viewer, viewer.cancelJob, { jobId: 'job-000001' }))).toBe(
      'PERMISSION_DENIED',
    );
  });

  it('lets an admin through to the handler, which answers for itself', async () => {
    const admin = api({ token: ADMIN_TOKEN });
    const error = await callUnary(admin, admin.submitForget, forget('admin-1')).catch(
      (e: grpc.ServiceError) => e,
    );
    expect(error).toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: 'no trained model: run StartTraining first',
    });
  });

  it('maps a client certificate to its role by common name', async () => {
    const carol = api({ certificate: 'carol' });
    expect(await code(callUnary(carol, carol.listWorkers, {}))).toBe('OK');
    expect(await code(callUnary(carol, carol.submitForget, forget('carol-1')))).toBe(
      'PERMISSION_DENIED',
    );
    // A worker's certificate is no API identity.
    const worker = api({ certificate: 'w1' });
    expect(await code(callUnary(worker, worker.listWorkers, {}))).toBe('UNAUTHENTICATED');
  });

  it('does not talk to a plaintext client: UNAVAILABLE', async () => {
    const plain = new CoordinatorClient(address, grpc.credentials.createInsecure(), {
      interceptors: [bearerTokenInterceptor(ADMIN_TOKEN)],
    });
    clients.push(plain);
    expect(await code(callUnary(plain, plain.listWorkers, {}, { deadlineMs: 3_000 }))).toBe(
      'UNAVAILABLE',
    );
  });
});

describe('the Registry and the workers: mutual TLS', () => {
  const registration = (address: string) => ({
    address,
    name: '',
    version: 'test',
    capacity: { maxExperts: 1 },
  });
  let fakeWorker: RunningServer;

  beforeAll(async () => {
    // A Worker service that requires a client certificate, and answers Release with its CN.
    const reject = unaryHandler(async () => {
      throw unimplemented('not in the fake');
    });
    const implementation: WorkerServer = {
      assignExperts: reject,
      loadDataset: reject,
      forward: reject,
      backward: reject,
      predict: reject,
      checkpoint: reject,
      release: unaryHandler(async (_request, call) => ({
        releasedExpertIds: [],
        releasedDatasetKeys: [peerCertificate(call)?.commonName ?? 'anonymous'],
      })),
    };
    fakeWorker = await startGrpcServer({
      address: '127.0.0.1:0',
      services: [{ definition: WorkerService, implementation }],
      healthServices: [],
      credentials: tlsServerCredentials(material('w1'), 'require'),
    });
  });
  afterAll(async () => {
    await fakeWorker.shutdown(100);
  });

  it('refuses a worker without a client certificate, or with an API user’s', async () => {
    const noCert = new RegistryClient(address, tlsChannelCredentials({ ca: ca() }));
    const user = new RegistryClient(address, tlsChannelCredentials(material('carol')));
    clients.push(noCert, user);
    expect(await code(callUnary(noCert, noCert.register, registration('127.0.0.1:1')))).toBe(
      'UNAUTHENTICATED',
    );
    expect(await code(callUnary(user, user.register, registration('127.0.0.1:1')))).toBe(
      'PERMISSION_DENIED',
    );
    expect(app.get(WorkersService).registry.all()).toHaveLength(0);
  });

  it('registers a worker with its certificate, and calls it with the coordinator’s own', async () => {
    const worker = new RegistryClient(address, tlsChannelCredentials(material('w1')));
    clients.push(worker);
    const { workerId } = await callUnary(worker, worker.register, registration(fakeWorker.address));
    const registered = app.get(WorkersService).registry.get(workerId)!;
    const released = await callUnary(registered.client, registered.client.release, {
      copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
      expertIds: [],
      datasetKeys: [],
      all: true,
    });
    expect(released.releasedDatasetKeys).toEqual(['coordinator']);
    // A client without a certificate does not get that far with the worker.
    const stranger = new RegistryClient(fakeWorker.address, tlsChannelCredentials({ ca: ca() }));
    clients.push(stranger);
    expect(
      await code(
        callUnary(stranger, stranger.register, registration('x:1'), { deadlineMs: 3_000 }),
      ),
    ).toBe('UNAVAILABLE');
  });
});

describe('the audit log', () => {
  it('records refused SubmitForget calls with who asked and the status', async () => {
    const store = new LocalDirStore(storeDir);
    const entries = await readAuditLog(store);
    const byRequest = (id: string): AuditEntry | undefined =>
      entries.find((e) => e.requestId === id);
    expect(byRequest('anon-1')).toMatchObject({
      action: 'SubmitForget',
      actor: { subject: 'anonymous' },
      target: { className: 'disc' },
      result: { outcome: 'refused', status: 'UNAUTHENTICATED' },
    });
    expect(byRequest('viewer-1')).toMatchObject({
      actor: { subject: 'bob', role: 'viewer', via: 'token' },
      result: { outcome: 'refused', status: 'PERMISSION_DENIED' },
    });
    expect(byRequest('admin-1')).toMatchObject({
      actor: { subject: 'alice', role: 'admin', via: 'token' },
      result: {
        outcome: 'refused',
        status: 'FAILED_PRECONDITION',
        message: 'no trained model: run StartTraining first',
      },
    });
    expect(byRequest('carol-1')).toMatchObject({
      actor: { subject: 'carol', role: 'viewer', via: 'certificate' },
      result: { status: 'PERMISSION_DENIED' },
    });
    // One object per entry under audit/, named by time: sorted keys are chronological.
    const names = readdirSync(join(storeDir, 'audit')).filter(
      (f) => f.endsWith('.json') && !f.endsWith('.meta.json'),
    );
    expect(names).toHaveLength(entries.length);
    expect(entries.map((e) => e.time)).toEqual([...entries.map((e) => e.time)].sort());
  });

  it('records an accepted request and how its job ended', async () => {
    // A model in the store (a card without weights): enough to accept a request, whose job
    // then fails at once because its dataset does not exist.
    await new ManifestStore(new LocalDirStore(storeDir)).update((draft) => {
      draft.attributes['model'] = { classes: ['square', 'disc', 'cross'], config: { experts: 2 } };
      draft.attributes['training'] = { mode: 'joint', dataset: `cifar10:${dir}/no-data`, seed: 0 };
    });
    const admin = api({ token: ADMIN_TOKEN });
    const accepted = await callUnary(admin, admin.submitForget, forget('accepted-1'));
    expect(accepted.duplicate).toBe(false);
    const jobs = app.get(JobsService);
    const deadline = Date.now() + 10_000;
    while (jobs.get(accepted.job!.jobId)?.state !== 'failed' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    let entries: AuditEntry[] = [];
    while (entries.length < 2 && Date.now() < deadline) {
      entries = await readAuditLog(new LocalDirStore(storeDir), { requestId: 'accepted-1' });
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(entries.map((e) => [e.action, e.result.outcome, e.actor.subject])).toEqual([
      ['SubmitForget', 'accepted', 'alice'],
      ['ForgetJobFinished', 'failed', 'alice'],
    ]);
    expect(entries[0]!.result.jobId).toBe(accepted.job!.jobId);
    expect(entries[1]).toMatchObject({
      target: { className: 'disc', classIndex: 1 },
      result: { jobId: accepted.job!.jobId, message: expect.stringMatching(/no-data/) as unknown },
    });
  });

  it('keeps tokens and keys out of every log line and audit entry', async () => {
    const store = join(storeDir, 'audit');
    const audit = readdirSync(store)
      .map((f) => readFileSync(join(store, f), 'utf8'))
      .join('\n');
    const logs = logLines.join('');
    expect(logs).toMatch(/call refused/);
    const key = readFileSync(join(tlsDir, 'coordinator-key.pem'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))[0]!;
    for (const secret of [ADMIN_TOKEN, VIEWER_TOKEN, 'lethe_not-a-token', key]) {
      expect(logs).not.toContain(secret);
      expect(audit).not.toContain(secret);
    }
    expect(logs).not.toMatch(/Bearer lethe_/);
  });
});
