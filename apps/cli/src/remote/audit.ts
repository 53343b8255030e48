import type { ObjectStore } from '@lethe/store';
import { CliError } from '../terminal/errors';
import { table } from '../terminal/tables';

/**
 * One entry of the coordinator's audit log, as it writes them: one JSON object per entry under
 * `audit/` in its object store (apps/coordinator/src/audit/audit-log.ts is the writer).
 */
export interface AuditEntry {
  schema: number;
  id: string;
  time: string;
  action: string;
  actor: { subject: string; role: string; via: string };
  peer?: string;
  requestId: string;
  target?: { className?: string; classIndex?: number; sampleIds?: string[]; sampleCount?: number };
  method?: string;
  result: {
    outcome: string;
    status?: string;
    message?: string;
    jobId?: string;
    manifestRevision?: number;
  };
}

const PREFIX = 'audit/';

/** Every audit entry in the store, oldest first (keys sort by time); optionally one request's. */
export async function readAuditLog(
  store: ObjectStore,
  filter: { requestId?: string } = {},
): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for (const { key } of await store.list(PREFIX)) {
    if (!key.endsWith('.json')) continue;
    let entry: AuditEntry;
    try {
      entry = JSON.parse(new TextDecoder().decode(await store.get(key))) as AuditEntry;
    } catch {
      throw new CliError(`audit entry ${key} in ${store.describe()} is not JSON`);
    }
    if (filter.requestId === undefined || entry.requestId === filter.requestId) entries.push(entry);
  }
  return entries;
}

function describeTarget(target: AuditEntry['target']): string {
  if (!target) return '—';
  if (target.className !== undefined) return `class ${target.className}`;
  if (target.classIndex !== undefined) return `class #${target.classIndex}`;
  if (target.sampleCount !== undefined) return `${target.sampleCount} samples`;
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
