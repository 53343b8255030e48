import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type sendUnaryData,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ANONYMOUS, type AuditRecord, appendAudit } from '@lethe/ledger';
import { CoordinatorService, type GetJobRequest, Job, JobKind, JobState } from '@lethe/proto';
import { LocalDirStore, ManifestStore, putContent } from '@lethe/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { letheAsync } from './cli-async';

const work = mkdtempSync(join(tmpdir(), 'lethe-audit-verify-'));
const noEnv = { LETHE_COORDINATOR: undefined };
const run = (args: string[]) => letheAsync(args, { cwd: work, env: noEnv });

const submit = (requestId: string, jobId: string): AuditRecord => ({
  action: 'SubmitForget',
  actor: ANONYMOUS,
  peer: 'ipv4:127.0.0.1:5000',
  requestId,
  target: { className: 'cross' },
  method: 'default',
  result: { outcome: 'accepted', status: 'OK', jobId },
});
const finish = (
  requestId: string,
  jobId: string,
  outcome: 'succeeded' | 'failed',
): AuditRecord => ({
  action: 'ForgetJobFinished',
  actor: ANONYMOUS,
  requestId,
  result: { outcome, jobId },
});

/**
 * A coordinator's store as its jobs leave it: f-1 succeeded (receipt published), f-2 failed.
 * Returns the directory and the audit file of each record, to delete.
 */
async function coordinatorStore(): Promise<{ dir: string; files: Record<string, string> }> {
  const dir = mkdtempSync(join(work, 'store-'));
  const store = new LocalDirStore(dir);
  const files: Record<string, string> = {};
  const records: [string, AuditRecord][] = [
    ['submit f-1', submit('f-1', 'job-000001')],
    ['submit f-2', submit('f-2', 'job-000002')],
    ['finish f-1', finish('f-1', 'job-000001', 'succeeded')],
    ['finish f-2', finish('f-2', 'job-000002', 'failed')],
  ];
  for (const [i, [name, record]] of records.entries()) {
    const entry = await appendAudit(store, record, new Date(Date.UTC(2025, 0, 2, 3, 4, i)));
    files[name] = join(dir, 'audit', `${entry.id}.json`);
  }
  const receipt = await putContent(store, new TextEncoder().encode('{}'), { kind: 'receipt' });
  await new ManifestStore(store).update((d) => void (d.objects['receipt/f-1'] = receipt));
  return { dir, files };
}

// A coordinator that knows the two jobs (GetJob), for --coordinator.
const server = new Server();
let address = '';
const states: Record<string, JobState> = {
  'job-000001': JobState.JOB_STATE_SUCCEEDED,
  'job-000002': JobState.JOB_STATE_FAILED,
};

beforeAll(async () => {
  const getJob = (
    call: ServerUnaryCall<GetJobRequest, Job>,
    callback: sendUnaryData<Job>,
  ): void => {
    const state = states[call.request.jobId];
    if (state === undefined) {
      callback({ code: status.NOT_FOUND, details: `no job ${call.request.jobId}` });
      return;
    }
    callback(
      null,
      Job.fromPartial({
        jobId: call.request.jobId,
        kind: JobKind.JOB_KIND_FORGET,
        state,
        requestId: call.request.jobId === 'job-000001' ? 'f-1' : 'f-2',
      }),
    );
  };
  server.addService(CoordinatorService, { getJob } as UntypedServiceImplementation);
  const port = await new Promise<number>((done, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : done(bound),
    ),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  await new Promise<void>((done) => server.tryShutdown(() => done()));
  rmSync(work, { recursive: true, force: true });
});

interface Verification {
  ok: boolean;
  holes: { kind: string; requestId: string; jobId?: string }[];
}

describe('lethe audit --verify', () => {
  it('passes a complete log, with or without the coordinator', async () => {
    const { dir } = await coordinatorStore();
    const alone = await run(['audit', '--verify', '--store', dir]);
    expect(alone.stderr).toBe('');
    expect(alone.status).toBe(0);
    expect(alone.stdout).toMatch(
      /4 audit entries, 2 accepted requests, 2 finished jobs, 1 published receipts/,
    );
    expect(alone.stdout).toMatch(/not checked: how jobs without a receipt ended/);
    expect(alone.stdout).toMatch(/^ok: /m);
    const remote = await run([
      'audit',
      '--verify',
      '--store',
      dir,
      '--coordinator',
      address,
      '--json',
    ]);
    expect(remote.status).toBe(0);
    expect(JSON.parse(remote.stdout)).toMatchObject({ ok: true, holes: [], counts: { jobs: 2 } });
  });

  it('reports a deleted finish record and exits 1', async () => {
    const { dir, files } = await coordinatorStore();
    rmSync(files['finish f-1']!);
    const shown = await run(['audit', '--verify', '--store', dir]);
    expect(shown.status).toBe(1);
    expect(shown.stdout).toMatch(
      /no-finish +f-1 +job-000001 +a published receipt \(the job succeeded\) but no finish record/,
    );
    expect(shown.stderr).toBe('lethe: error: the audit log has 1 hole(s)\n');
    // A failed job leaves no receipt: only the coordinator can say it ended.
    rmSync(files['finish f-2']!);
    const json = await run(['audit', '--verify', '--store', dir, '--json']);
    expect(json.status).toBe(1);
    expect((JSON.parse(json.stdout) as Verification).holes.map((h) => h.requestId)).toEqual([
      'f-1',
    ]);
    const remote = await run([
      'audit',
      '--verify',
      '--store',
      dir,
      '--coordinator',
      address,
      '--json',
    ]);
    expect(remote.status).toBe(1);
    expect(
      (JSON.parse(remote.stdout) as Verification).holes.map((h) => `${h.kind} ${h.jobId}`).sort(),
    ).toEqual(['no-finish job-000001', 'no-finish job-000002']);
  });

  it('reports a missing submission record and a receipt without an audit trail', async () => {
    const { dir, files } = await coordinatorStore();
    rmSync(files['submit f-2']!);
    const receipt = await putContent(new LocalDirStore(dir), new TextEncoder().encode('{"x":1}'), {
      kind: 'receipt',
    });
    await new ManifestStore(new LocalDirStore(dir)).update(
      (d) => void (d.objects['receipt/local-1'] = receipt),
    );
    const before = readdirSync(join(dir, 'audit')).sort();
    const json = await run(['audit', '--verify', '--store', dir, '--json']);
    expect(json.status).toBe(1);
    expect(json.stderr).toBe('lethe: error: the audit log has 2 hole(s)\n');
    expect((JSON.parse(json.stdout) as Verification).holes).toEqual([
      expect.objectContaining({ kind: 'no-submission', requestId: 'f-2', jobId: 'job-000002' }),
      expect.objectContaining({ kind: 'receipt-without-audit', requestId: 'local-1' }),
    ]);
    // Verifying repairs nothing: the log is as it was.
    expect(readdirSync(join(dir, 'audit')).sort()).toEqual(before);
  });

  it('reports an accepted request the coordinator has no job for', async () => {
    const { dir } = await coordinatorStore();
    await appendAudit(new LocalDirStore(dir), submit('f-9', 'job-000009'));
    const remote = await run(['audit', '--verify', '--store', dir, '--coordinator', address]);
    expect(remote.status).toBe(1);
    expect(remote.stdout).toMatch(
      /unknown-job +f-9 +job-000009 +accepted, but the coordinator has no such job/,
    );
    const refused = await run(['audit', '--store', dir, '--coordinator', address]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^lethe: error: --coordinator only applies with --verify/);
  });
});
