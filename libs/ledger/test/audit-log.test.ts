import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IntegrityError, LocalDirStore, ManifestStore, putContent } from '@lethe/store';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AuditedJob,
  type AuditEntry,
  type AuditRecord,
  ANONYMOUS,
  appendAudit,
  publishedReceiptIds,
  readAuditLog,
  verifyAuditTrail,
} from '../src';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function store(): LocalDirStore {
  const dir = mkdtempSync(join(tmpdir(), 'lethe-audit-'));
  dirs.push(dir);
  return new LocalDirStore(dir);
}

const submit = (
  requestId: string,
  jobId: string,
  outcome: 'accepted' | 'duplicate' = 'accepted',
): AuditRecord => ({
  action: 'SubmitForget',
  actor: ANONYMOUS,
  peer: 'ipv4:127.0.0.1:5000',
  requestId,
  target: { className: 'cross' },
  method: 'default',
  result: { outcome, status: 'OK', jobId },
});
const finish = (
  requestId: string,
  jobId: string,
  outcome: 'succeeded' | 'failed' | 'cancelled',
): AuditRecord => ({
  action: 'ForgetJobFinished',
  actor: ANONYMOUS,
  requestId,
  result: { outcome, jobId },
});

/** A log of two requests, both finished; f-1 published a receipt. */
async function completeLog(): Promise<{ entries: AuditEntry[]; receipts: string[] }> {
  const objects = store();
  const at = (s: number) => new Date(Date.UTC(2025, 0, 2, 3, 4, s));
  await appendAudit(objects, submit('f-1', 'job-1'), at(1));
  await appendAudit(objects, submit('f-1', 'job-1', 'duplicate'), at(2));
  await appendAudit(objects, submit('f-2', 'job-2'), at(3));
  await appendAudit(objects, finish('f-1', 'job-1', 'succeeded'), at(4));
  await appendAudit(objects, finish('f-2', 'job-2', 'failed'), at(5));
  const receipt = await putContent(objects, new TextEncoder().encode('{}'), { kind: 'receipt' });
  await new ManifestStore(objects).update((d) => void (d.objects['receipt/f-1'] = receipt));
  return { entries: await readAuditLog(objects), receipts: await publishedReceiptIds(objects) };
}

const jobs: AuditedJob[] = [
  { jobId: 'job-1', requestId: 'f-1', state: 'succeeded' },
  { jobId: 'job-2', requestId: 'f-2', state: 'failed' },
];

describe('the audit log', () => {
  it('reads entries oldest first and names an entry that is not one', async () => {
    const objects = store();
    const dir = dirs.at(-1)!;
    await appendAudit(objects, submit('f-1', 'job-1'), new Date(Date.UTC(2025, 0, 2)));
    await appendAudit(objects, finish('f-1', 'job-1', 'failed'), new Date(Date.UTC(2025, 0, 3)));
    expect((await readAuditLog(objects)).map((e) => e.action)).toEqual([
      'SubmitForget',
      'ForgetJobFinished',
    ]);
    await objects.put('audit/2025-01-04t00-00-00-000z-0000-aa.json', Buffer.from('{"schema":1}'));
    await expect(readAuditLog(objects)).rejects.toThrow(IntegrityError);
    await expect(readAuditLog(objects)).rejects.toThrow(/2025-01-04.*malformed audit entry: id/);
    writeFileSync(join(dir, 'audit', '2025-01-04t00-00-00-000z-0000-aa.json'), 'not json');
    await expect(readAuditLog(objects)).rejects.toThrow(/audit entry is not JSON/);
  });

  it('verifies a complete log, with and without the jobs', async () => {
    const { entries, receipts } = await completeLog();
    expect(receipts).toEqual(['f-1']);
    const alone = verifyAuditTrail({ entries, receipts });
    expect(alone.holes).toEqual([]);
    expect(alone.ok).toBe(true);
    expect(alone.counts).toEqual({ entries: 5, accepted: 2, finished: 2, receipts: 1, jobs: 0 });
    expect(alone.notChecked.join(' ')).toMatch(/how jobs without a receipt ended/);
    expect(verifyAuditTrail({ entries, receipts, jobs: { list: jobs, complete: true } }).ok).toBe(
      true,
    );
  });

  it('reports a missing finish record: from the receipt alone, or from the job', async () => {
    const { entries, receipts } = await completeLog();
    const without = (requestId: string) =>
      entries.filter((e) => !(e.action === 'ForgetJobFinished' && e.requestId === requestId));
    // f-1 published a receipt, so the store alone knows its job ended.
    expect(verifyAuditTrail({ entries: without('f-1'), receipts }).holes).toEqual([
      expect.objectContaining({ kind: 'no-finish', requestId: 'f-1', jobId: 'job-1' }),
    ]);
    // f-2 failed: only the job says it ended.
    expect(verifyAuditTrail({ entries: without('f-2'), receipts }).ok).toBe(true);
    const checked = verifyAuditTrail({
      entries: without('f-2'),
      receipts,
      jobs: { list: jobs, complete: false },
    });
    expect(checked.holes).toEqual([
      {
        kind: 'no-finish',
        requestId: 'f-2',
        jobId: 'job-2',
        detail: 'job failed without a finish record',
      },
    ]);
  });

  it('reports a missing submission, a receipt without audit, doubles, mismatches and unknown jobs', async () => {
    const { entries, receipts } = await completeLog();
    const noSubmission = entries.filter(
      (e) => !(e.action === 'SubmitForget' && e.requestId === 'f-2'),
    );
    expect(verifyAuditTrail({ entries: noSubmission, receipts }).holes).toEqual([
      expect.objectContaining({ kind: 'no-submission', requestId: 'f-2', jobId: 'job-2' }),
    ]);
    expect(verifyAuditTrail({ entries, receipts: [...receipts, 'local-1'] }).holes).toEqual([
      expect.objectContaining({ kind: 'receipt-without-audit', requestId: 'local-1' }),
    ]);
    const doubled = [...entries, entries.find((e) => e.action === 'ForgetJobFinished')!];
    expect(verifyAuditTrail({ entries: doubled, receipts }).holes.map((h) => h.kind)).toEqual([
      'doubled',
    ]);
    const running: AuditedJob[] = [jobs[0]!, { ...jobs[1]!, state: 'running' }];
    expect(
      verifyAuditTrail({ entries, receipts, jobs: { list: running, complete: false } }).holes,
    ).toEqual([expect.objectContaining({ kind: 'finish-mismatch', jobId: 'job-2' })]);
    // The coordinator's complete list: a job with no entry, an entry with no job.
    const listed: AuditedJob[] = [jobs[0]!, { jobId: 'job-3', requestId: 'f-3', state: 'queued' }];
    expect(
      verifyAuditTrail({ entries, receipts, jobs: { list: listed, complete: true } }).holes.map(
        (h) => `${h.kind} ${h.jobId}`,
      ),
    ).toEqual(['no-submission job-3', 'unknown-job job-2']);
  });
});
