import { randomBytes } from 'node:crypto';
import type { ObjectStore } from '@lethe/store';

/** Where audit entries live in the object store: one object per entry. */
export const AUDIT_PREFIX = 'audit/';

/** Who asked: an authenticated caller, or `anonymous` on an open API. */
export interface AuditActor {
  subject: string;
  role: string;
  via: 'token' | 'certificate' | 'none';
}

export const ANONYMOUS: AuditActor = { subject: 'anonymous', role: 'anonymous', via: 'none' };

/** What a forget request names: a class by name or index, or sample ids (at most 100 kept). */
export interface AuditTarget {
  className?: string;
  classIndex?: number;
  sampleIds?: string[];
  sampleCount?: number;
  subjects?: string[];
}

export type AuditOutcome =
  'accepted' | 'duplicate' | 'refused' | 'succeeded' | 'failed' | 'cancelled';

/** One audit entry as stored (JSON, `audit/<time>-<random>.json`). */
export interface AuditEntry {
  schema: 1;
  /** The object key's name: sortable by time. */
  id: string;
  /** ISO 8601, UTC. */
  time: string;
  /** `SubmitForget` (a request, whatever became of it) or `ForgetJobFinished` (its job's end). */
  action: 'SubmitForget' | 'ForgetJobFinished';
  actor: AuditActor;
  /** The client's address, for SubmitForget. */
  peer?: string;
  requestId: string;
  target?: AuditTarget;
  /** The forget method, e.g. `targeted`; `default` when the request left it to the server. */
  method?: string;
  result: {
    outcome: AuditOutcome;
    /** gRPC status name of the answer (SubmitForget). */
    status?: string;
    /** Why it was refused, or the job's error. */
    message?: string;
    jobId?: string;
    manifestRevision?: number;
  };
}

export type AuditRecord = Omit<AuditEntry, 'schema' | 'id' | 'time'>;

let last = { ms: 0, n: 0 };

/**
 * `audit/2025-01-02t03-04-05-678z-0000-<16 hex>.json`: keys sort by time, then by a counter for
 * entries of one millisecond from this process; the random part keeps processes apart.
 */
export function auditKey(time: Date, random = randomBytes(8).toString('hex')): string {
  const ms = time.getTime();
  last = ms === last.ms ? { ms, n: last.n + 1 } : { ms, n: 0 };
  const stamp = time.toISOString().toLowerCase().replace(/[:.]/g, '-');
  return `${AUDIT_PREFIX}${stamp}-${String(last.n).padStart(4, '0')}-${random}.json`;
}

const SECRET_PATTERNS: [RegExp, string][] = [
  [/(bearer\s+)\S+/gi, '$1***'],
  [/((?:access|secret|session)[-_]?key|token|password|signature)([=:]\s*)[^\s&,;]+/gi, '$1$2***'],
];

/** A message fit for the audit log: no bearer token, key or password survives in it. */
export function scrub(message: string): string {
  return SECRET_PATTERNS.reduce((text, [pattern, by]) => text.replace(pattern, by), message).slice(
    0,
    1_000,
  );
}

/**
 * Appends one entry: a new object under `audit/`, written whole by the store's atomic put and
 * only if no object holds its key, so entries are never overwritten or half-written.
 */
export async function appendAudit(
  store: ObjectStore,
  record: AuditRecord,
  time = new Date(),
): Promise<AuditEntry> {
  const key = auditKey(time);
  const entry: AuditEntry = {
    schema: 1,
    id: key.slice(AUDIT_PREFIX.length, -'.json'.length),
    time: time.toISOString(),
    ...record,
    ...(record.result.message !== undefined
      ? { result: { ...record.result, message: scrub(record.result.message) } }
      : {}),
  };
  await store.put(key, new TextEncoder().encode(`${JSON.stringify(entry)}\n`), {
    ifNoneMatch: '*',
  });
  return entry;
}

/** Every audit entry, oldest first; with `requestId`, that request's only. */
export async function listAudit(
  store: ObjectStore,
  filter: { requestId?: string } = {},
): Promise<AuditEntry[]> {
  const objects = await store.list(AUDIT_PREFIX);
  const entries: AuditEntry[] = [];
  for (const { key } of objects) {
    if (!key.endsWith('.json')) continue;
    const text = new TextDecoder().decode(await store.get(key));
    let entry: AuditEntry;
    try {
      entry = JSON.parse(text) as AuditEntry;
    } catch {
      throw new Error(`audit entry ${key} is not JSON`);
    }
    if (filter.requestId === undefined || entry.requestId === filter.requestId) entries.push(entry);
  }
  return entries;
}
