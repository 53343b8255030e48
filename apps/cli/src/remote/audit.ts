import { status } from '@grpc/grpc-js';
import { jobStateToJSON } from '@lethe/proto';
import {
  type AuditEntry,
  type AuditedJob,
  type AuditedJobState,
  type AuditVerification,
  publishedReceiptIds,
  readAuditLog,
  verifyAuditTrail,
} from '@lethe/ledger';
import type { ObjectStore } from '@lethe/store';
import { table } from '../terminal/tables';
import { callUnary, isServiceError, withCoordinator } from './grpc';
import type { CoordinatorTarget } from './target';
import { counted } from '../terminal/wording';

export { readAuditLog };

function describeTarget(target: AuditEntry['target']): string {
  if (!target) return '—';
  if (target.className !== undefined) return `class ${target.className}`;
  if (target.classIndex !== undefined) return `class #${target.classIndex}`;
  if (target.sampleCount !== undefined) return counted(target.sampleCount, 'sample');
  return '—';
}

/** The audit log as a table: when, who, what, result. */
export function auditTable(entries: AuditEntry[]): string {
  return table([
    ['time', 'who', 'action', 'request', 'target', 'method', 'result', 'job', 'detail'],
    ...entries.map((e) => [
      e.time,
      `${e.actor.subject} (${e.actor.role})`,
      e.action,
      e.requestId || '—',
      describeTarget(e.target),
      e.method ?? '—',
      e.result.status && e.result.status !== 'OK'
        ? `${e.result.outcome} ${e.result.status}`
        : e.result.outcome,
      e.result.jobId ?? '—',
      e.result.message ??
        (e.result.manifestRevision ? `revision ${e.result.manifestRevision}` : ''),
    ]),
  ]);
}

/** `JOB_STATE_SUCCEEDED` → `succeeded`, as the audit log names a job's end. */
function auditedState(state: number): AuditedJobState {
  return jobStateToJSON(state)
    .replace(/^JOB_STATE_/, '')
    .toLowerCase() as AuditedJobState;
}

/**
 * The coordinator's forget jobs that the log names, by GetJob (no RPC lists jobs): `unknown`
 * for a job it does not have.
 */
async function jobsOf(target: CoordinatorTarget, entries: AuditEntry[]): Promise<AuditedJob[]> {
  const named = new Map<string, string>();
  for (const entry of entries) {
    if (entry.result.jobId !== undefined && entry.result.outcome !== 'refused') {
      named.set(entry.result.jobId, entry.requestId);
    }
  }
  return withCoordinator(target, async (client) => {
    const jobs: AuditedJob[] = [];
    for (const [jobId, requestId] of named) {
      try {
        const job = await callUnary(client, client.getJob, { jobId });
        jobs.push({ jobId, requestId: job.requestId || requestId, state: auditedState(job.state) });
      } catch (error) {
        if (!isServiceError(error) || error.code !== status.NOT_FOUND) throw error;
        jobs.push({ jobId, requestId, state: 'unknown' });
      }
    }
    return jobs;
  });
}

/**
 * `lethe audit --verify`: the store's audit log against its published receipts and, with a
 * coordinator, against how each job it names ended (GetJob).
 */
export async function verifyAudit(
  store: ObjectStore,
  coordinator?: CoordinatorTarget,
): Promise<AuditVerification> {
  const entries = await readAuditLog(store);
  const receipts = await publishedReceiptIds(store);
  const jobs = coordinator ? await jobsOf(coordinator, entries) : undefined;
  return verifyAuditTrail({
    entries,
    receipts,
    ...(jobs ? { jobs: { list: jobs, complete: false } } : {}),
  });
}

/** The holes as a table: what is missing, for which request and job. */
export function auditHolesTable(verification: AuditVerification): string {
  return table([
    ['problem', 'request', 'job', 'detail'],
    ...verification.holes.map((hole) => [
      hole.kind,
      hole.requestId || '—',
      hole.jobId ?? '—',
      hole.detail,
    ]),
  ]);
}
