import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { SubmitForgetRequest, ForgetMethod } from '@lethe/proto';
import { type CallInfo, failedPrecondition } from '@lethe/rpc';
import { MemoryStore } from '@lethe/store';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { auditKey, readAuditLog, scrub } from '../src/audit/audit-log';
import { AuditService } from '../src/audit/audit.service';
import { loadCoordinatorConfig } from '../src/config/coordinator-config';
import { parseAuthFile } from '../src/config/auth-file';

const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'lethe-coordinator-audit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha = (token: string): string => createHash('sha256').update(token).digest('hex');

/** A call with this metadata and no TLS. */
function call(token?: string): CallInfo {
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return {
    metadata,
    getPeer: () => 'ipv4:127.0.0.1:1',
    getPath: () => '/lethe.v1.Coordinator/ListWorkers',
    getAuthContext: () => ({}),
  };
}

describe('audit log', () => {
  it('records accepted, duplicate and refused SubmitForget calls, one object each', async () => {
    const store = new MemoryStore();
    const audit = new AuditService(store, log);
    const request = SubmitForgetRequest.fromPartial({
      requestId: 'r-1',
      target: { $case: 'sampleIds', value: { ids: ['c:train:1', 'c:train:2'] } },
      method: ForgetMethod.FORGET_METHOD_GRADIENT_ASCENT,
    });
    const caller = {
      identity: { subject: 'alice', role: 'admin', via: 'token' as const },
      peer: 'ipv4:10.0.0.1:5',
    };
    await audit.answered('accepted', request, caller, 'job-000007', new Date());
    await audit.answered('duplicate', request, caller, 'job-000007', new Date());
    await audit.refusedSubmit(
      request,
      { identity: undefined, peer: 'x' },
      failedPrecondition('token=abc123 secret_key=xyz is busy; Bearer lethe_abc'),
    );
    const entries = await readAuditLog(store);
    expect(entries.map((e) => [e.actor.subject, e.result.outcome, e.result.status])).toEqual([
      ['alice', 'accepted', 'OK'],
      ['alice', 'duplicate', 'OK'],
      ['anonymous', 'refused', 'FAILED_PRECONDITION'],
    ]);
    expect(entries[0]).toMatchObject({
      schema: 1,
      action: 'SubmitForget',
      peer: 'ipv4:10.0.0.1:5',
      requestId: 'r-1',
      method: 'gradient-ascent',
      target: { sampleIds: ['c:train:1', 'c:train:2'], sampleCount: 2 },
      result: { jobId: 'job-000007' },
    });
    expect(entries[2]!.result.message).toBe('token=*** secret_key=*** is busy; Bearer ***');
    expect((await store.list('audit/')).map((o) => o.key)).toEqual(
      entries.map((e) => `audit/${e.id}.json`),
    );
  });

  it('refuses to accept a request whose entry cannot be stored, and retries a job end', async () => {
    const store = new MemoryStore();
    let failures = 2;
    const put = store.put.bind(store);
    store.put = async (...args: Parameters<MemoryStore['put']>) => {
      if (failures > 0) {
        failures--;
        throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      }
      return put(...args);
    };
    const audit = new AuditService(store, log);
    const request = SubmitForgetRequest.fromPartial({
      requestId: 'r-2',
      target: { $case: 'className', value: 'cat' },
    });
    await expect(
      audit.answered(
        'accepted',
        request,
        { identity: undefined, peer: 'x' },
        'job-000001',
        new Date(),
      ),
    ).rejects.toMatchObject({ code: status.UNAVAILABLE });
    expect(await readAuditLog(store)).toEqual([]);
    let written = false;
    const job = {
      id: 'job-000001',
      seq: 1,
      kind: 'forget' as const,
      state: 'succeeded' as const,
      requestId: 'r-2',
      fingerprint: '',
      request: {
        requestId: 'r-2',
        classIndex: 3,
        className: 'cat',
        method: 'targeted' as const,
        maskOutput: false,
        seed: 0,
      },
      createdAt: new Date(),
      manifestRevision: 4,
    };
    // The first write fails: the entry is written on a retry.
    await audit.forgetFinished(job, () => (written = true));
    expect(written).toBe(true);
    const entries = await readAuditLog(store);
    expect(entries.map((e) => [e.action, e.result.outcome, e.result.manifestRevision])).toEqual([
      ['ForgetJobFinished', 'succeeded', 4],
    ]);
  });

  it("verifies the log against the coordinator's jobs: a job without records is a hole", async () => {
    const store = new MemoryStore();
    const audit = new AuditService(store, log);
    const request = (requestId: string) =>
      SubmitForgetRequest.fromPartial({ requestId, target: { $case: 'className', value: 'cat' } });
    const caller = { identity: undefined, peer: 'x' };
    const job = (id: string, requestId: string, state: 'succeeded' | 'running') => ({
      id,
      seq: Number(id.slice(-1)),
      kind: 'forget' as const,
      state,
      requestId,
      fingerprint: '',
      request: {
        requestId,
        classIndex: 3,
        className: 'cat',
        method: 'targeted' as const,
        maskOutput: false,
        seed: 0,
      },
      createdAt: new Date(),
      finishedAt: new Date(),
      manifestRevision: 2,
    });
    await audit.answered('accepted', request('r-1'), caller, 'job-000001', new Date());
    await audit.forgetFinished(job('job-000001', 'r-1', 'succeeded'), () => undefined);
    await audit.answered('accepted', request('r-2'), caller, 'job-000002', new Date());
    const training = { ...job('job-000004', '', 'running'), kind: 'training' as const };
    const jobs = [
      job('job-000001', 'r-1', 'succeeded'),
      job('job-000002', 'r-2', 'running'),
      training,
    ];
    expect(await audit.verify(jobs)).toMatchObject({ ok: true, counts: { jobs: 2 } });
    // A finished job whose end was never recorded, a job no submission names.
    jobs[1] = job('job-000002', 'r-2', 'succeeded');
    jobs.push(job('job-000003', 'r-3', 'running'));
    const verification = await audit.verify(jobs);
    expect(verification.holes.map((h) => `${h.kind} ${h.jobId}`)).toEqual([
      'no-finish job-000002',
      'no-submission job-000003',
    ]);
  });

  it('names entries so that they sort by time', () => {
    const early = auditKey(new Date('2025-01-02T03:04:05.678Z'), 'ffff');
    const same = auditKey(new Date('2025-01-02T03:04:05.678Z'), '0000');
    const late = auditKey(new Date('2025-01-02T03:04:05.679Z'), '0000');
    expect(early).toBe('audit/2025-01-02t03-04-05-678z-0000-ffff.json');
    expect(same).toBe('audit/2025-01-02t03-04-05-678z-0001-0000.json');
    expect([late, same, early].sort()).toEqual([early, same, late]);
    expect(scrub('password: hunter2')).toBe('password: ***');
  });
});

describe('auth file', () => {
  const admin = 'lethe_admin-token';
  const file = {
    tokens: { [`sha256:${sha(admin)}`]: { subject: 'alice', role: 'admin' } },
    certificates: { 'ops-laptop': { role: 'viewer' } },
  };

  it('authenticates tokens by their hash and says nothing about them', () => {
    const policy = parseAuthFile(JSON.stringify(file));
    expect(policy.size).toEqual({ tokens: 1, certificates: 1 });
    expect(policy.authenticate(call(admin))).toEqual({
      subject: 'alice',
      role: 'admin',
      via: 'token',
    });
    expect(policy.authenticate(call())).toBeUndefined();
    expect(() => policy.authenticate(call('lethe_guess'))).toThrow(/^invalid bearer token$/);
    expect(policy.certificateRole('ops-laptop')).toBe('viewer');
    expect(policy.certificateRole('worker-1')).toBeUndefined();
  });

  it.each([
    ['{', /not valid JSON/],
    [
      JSON.stringify({ tokens: { [admin]: { subject: 'a', role: 'admin' } } }),
      /key #1 is not sha256:/,
    ],
    [
      JSON.stringify({ tokens: { [`sha256:${sha('x')}`]: { subject: 'a', role: 'root' } } }),
      /role/,
    ],
    [JSON.stringify({ certificates: { cn: { role: 'admin', extra: 1 } } }), /certificates/],
    [JSON.stringify({ users: {} }), /users|unrecognized/i],
  ])('rejects %s', (text, message) => {
    expect(() => parseAuthFile(text)).toThrow(message);
    // A raw token put in the file by mistake is never quoted back.
    expect(() => parseAuthFile(text)).not.toThrow(/lethe_admin-token/);
  });
});

describe('security configuration', () => {
  const auth = join(dir, 'auth.json');
  writeFileSync(auth, JSON.stringify({ tokens: {} }));

  it('reads the auth file and TLS flags from flags or LETHE_* variables', () => {
    expect(loadCoordinatorConfig([], { LETHE_AUTH_FILE: auth }).authFile).toBe(auth);
  });

  it.each([
    [
      ['--tls-cert', '/nope/cert.pem'],
      /^invalid tlsKey \(--tls-key \/ LETHE_TLS_KEY\): required with TLS/,
    ],
    [
      ['--tls-cert', '/nope/cert.pem', '--tls-key', '/nope/key.pem', '--tls-ca', '/nope/ca.pem'],
      /^invalid tlsCert \(--tls-cert \/ LETHE_TLS_CERT\): cannot read \/nope\/cert\.pem: ENOENT$/,
    ],
    [
      ['--auth-file', '/nope/auth.json'],
      /^invalid authFile \(--auth-file \/ LETHE_AUTH_FILE\): cannot read \/nope\/auth\.json: ENOENT$/,
    ],
  ])('names the key of a bad security setting: %j', (args, message) => {
    expect(() => loadCoordinatorConfig(args, {})).toThrow(message);
  });

  it('rejects TLS files that are not what they claim', () => {
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'junk');
    expect(() =>
      loadCoordinatorConfig([], { LETHE_TLS_CERT: junk, LETHE_TLS_KEY: junk, LETHE_TLS_CA: junk }),
    ).toThrow(
      /^invalid tlsCert \(--tls-cert \/ LETHE_TLS_CERT\): .*junk\.pem does not hold a PEM certificate$/,
    );
  });
});
