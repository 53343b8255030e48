import { randomBytes } from 'node:crypto';
import { IntegrityError, ManifestStore, type ObjectStore } from '@lethe/store';
import { z } from 'zod';

/** Where audit entries live in the object store: one object per entry. */
export const AUDIT_PREFIX = 'audit/';

const ActorSchema = z.object({
  subject: z.string(),
  role: z.string(),
  via: z.enum(['token', 'certificate', 'none']),
});

/** Who asked: an authenticated caller, or `anonymous` on an open API. */
export type AuditActor = z.infer<typeof ActorSchema>;

export const ANONYMOUS: AuditActor = { subject: 'anonymous', role: 'anonymous', via: 'none' };

const TargetSchema = z.object({
  className: z.string().optional(),
  classIndex: z.number().int().optional(),
  sampleIds: z.array(z.string()).optional(),
  sampleCount: z.number().int().min(0).optional(),
  subjects: z.array(z.string()).optional(),
});

/** What a forget request names: a class by name or index, or sample ids (at most 100 kept). */
export type AuditTarget = z.infer<typeof TargetSchema>;

const OutcomeSchema = z.enum([
  'accepted',
  'duplicate',
  'refused',
  'succeeded',
  'failed',
  'cancelled',
]);
export type AuditOutcome = z.infer<typeof OutcomeSchema>;

/** One audit entry as stored (JSON, `audit/<time>-<counter>-<random>.json`). */
export const AuditEntrySchema = z.object({
  schema: z.literal(1),
  /** The object key's name: sortable by time. */
  id: z.string().min(1),
  /** ISO 8601, UTC. */
  time: z.iso.datetime(),
  /** `SubmitForget` (a request, whatever became of it) or `ForgetJobFinished` (its job's end). */
  action: z.enum(['SubmitForget', 'ForgetJobFinished']),
  actor: ActorSchema,
  /** The client's address, for SubmitForget. */
  peer: z.string().optional(),
  requestId: z.string().max(100),
  target: TargetSchema.optional(),
  /** The forget method, e.g. `targeted`; `default` when the request left it to the server. */
  method: z.string().optional(),
  result: z.object({
    outcome: OutcomeSchema,
    /** gRPC status name of the answer (SubmitForget). */
    status: z.string().optional(),
    /** Why it was refused, or the job's error. */
    message: z.string().optional(),
    jobId: z.string().optional(),
    manifestRevision: z.number().int().optional(),
  }),
});

export type AuditEntry = z.infer<typeof AuditEntrySchema>;
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

/**
 * Every audit entry, oldest first (keys sort by time); with `requestId`, that request's only.
 * The one reader of the log: the coordinator, `lethe audit` and its `--verify` all use it.
 * @throws IntegrityError naming the entry that is not JSON or not an audit entry.
 */
export async function readAuditLog(
  store: ObjectStore,
  filter: { requestId?: string } = {},
): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for (const { key } of await store.list(AUDIT_PREFIX)) {
    if (!key.endsWith('.json')) continue;
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder().decode(await store.get(key)));
    } catch (error) {
      throw new IntegrityError(key, 'audit entry is not JSON', { cause: error });
    }
    const parsed = AuditEntrySchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new IntegrityError(
        key,
        `malformed audit entry: ${issue?.path.join('.') || 'entry'}: ${issue?.message}`,
      );
    }
    if (filter.requestId === undefined || parsed.data.requestId === filter.requestId) {
      entries.push(parsed.data);
    }
  }
  return entries;
}

/** A job's state as the coordinator knows it; `unknown` when it has no such job. */
export type AuditedJobState =
  'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'unknown';

/** A forget job, for checking the log against: from the coordinator's jobs (or GetJob). */
export interface AuditedJob {
  jobId: string;
  requestId: string;
  state: AuditedJobState;
}

export type AuditHoleKind =
  | 'no-submission'
  | 'no-finish'
  | 'finish-mismatch'
  | 'doubled'
  | 'receipt-without-audit'
  | 'unknown-job';

/** Something the audit log should hold and does not, or holds twice. */
export interface AuditHole {
  kind: AuditHoleKind;
  requestId: string;
  jobId?: string;
  detail: string;
}

export interface AuditVerification {
  ok: boolean;
  counts: { entries: number; accepted: number; finished: number; receipts: number; jobs: number };
  holes: AuditHole[];
  /** What this check could not see, for the reader of a clean result. */
  notChecked: string[];
}

const ENDS: ReadonlySet<string> = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * Checks that every forget request has its records: every accepted SubmitForget has a job and,
 * once that job ended, exactly one ForgetJobFinished with the job's outcome; every finish or
 * duplicate names an accepted submission; every receipt (`receipts`: their request ids) was
 * accepted and finished as succeeded. `jobs` are the coordinator's forget jobs: `complete` when
 * they are all of them (then a job no entry names is a hole too), else the ones looked up.
 */
export function verifyAuditTrail(input: {
  entries: readonly AuditEntry[];
  receipts: readonly string[];
  jobs?: { list: readonly AuditedJob[]; complete: boolean };
}): AuditVerification {
  const holes: AuditHole[] = [];
  const accepted = new Map<string, AuditEntry[]>();
  const finished = new Map<string, AuditEntry[]>();
  const push = (map: Map<string, AuditEntry[]>, key: string, entry: AuditEntry) =>
    map.set(key, [...(map.get(key) ?? []), entry]);
  for (const entry of input.entries) {
    const jobId = entry.result.jobId;
    if (entry.action === 'SubmitForget' && entry.result.outcome === 'accepted') {
      if (jobId === undefined) {
        holes.push({
          kind: 'unknown-job',
          requestId: entry.requestId,
          detail: `accepted submission ${entry.id} names no job`,
        });
      } else push(accepted, jobId, entry);
    } else if (entry.action === 'ForgetJobFinished') {
      if (jobId === undefined) {
        holes.push({
          kind: 'no-submission',
          requestId: entry.requestId,
          detail: `finish record ${entry.id} names no job`,
        });
      } else push(finished, jobId, entry);
    }
  }
  for (const [jobId, entries] of accepted) {
    if (entries.length > 1) {
      holes.push({
        kind: 'doubled',
        requestId: entries[0]!.requestId,
        jobId,
        detail: `${entries.length} accepted submission records for one job`,
      });
    }
  }
  for (const [jobId, entries] of finished) {
    const requestId = entries[0]!.requestId;
    if (!accepted.has(jobId)) {
      holes.push({
        kind: 'no-submission',
        requestId,
        jobId,
        detail: 'a finish record but no accepted submission record',
      });
    }
    if (entries.length > 1) {
      holes.push({
        kind: 'doubled',
        requestId,
        jobId,
        detail: `${entries.length} finish records (${entries.map((e) => e.result.outcome).join(', ')})`,
      });
    }
  }
  for (const entry of input.entries) {
    const jobId = entry.result.jobId;
    if (entry.result.outcome === 'duplicate' && jobId !== undefined && !accepted.has(jobId)) {
      holes.push({
        kind: 'no-submission',
        requestId: entry.requestId,
        jobId,
        detail: `duplicate ${entry.id} names a job with no accepted submission record`,
      });
    }
  }

  const jobs = new Map((input.jobs?.list ?? []).map((job) => [job.jobId, job]));
  for (const job of jobs.values()) {
    if (job.state === 'unknown') continue;
    if (!accepted.has(job.jobId)) {
      holes.push({
        kind: 'no-submission',
        requestId: job.requestId,
        jobId: job.jobId,
        detail: `job ${job.state} without an accepted submission record`,
      });
    }
    const ends = finished.get(job.jobId) ?? [];
    if (ENDS.has(job.state) && ends.length === 0) {
      holes.push({
        kind: 'no-finish',
        requestId: job.requestId,
        jobId: job.jobId,
        detail: `job ${job.state} without a finish record`,
      });
    }
    for (const end of ends) {
      if (end.result.outcome !== job.state) {
        holes.push({
          kind: 'finish-mismatch',
          requestId: job.requestId,
          jobId: job.jobId,
          detail: `finish record says ${end.result.outcome}, job is ${job.state}`,
        });
      }
    }
  }
  for (const [jobId, entries] of accepted) {
    const job = jobs.get(jobId);
    if (job?.state === 'unknown' || (input.jobs?.complete && !job)) {
      holes.push({
        kind: 'unknown-job',
        requestId: entries[0]!.requestId,
        jobId,
        detail: 'accepted, but the coordinator has no such job',
      });
    }
  }

  for (const requestId of input.receipts) {
    const submissions = [...accepted.values()].flat().filter((e) => e.requestId === requestId);
    if (submissions.length === 0) {
      holes.push({
        kind: 'receipt-without-audit',
        requestId,
        detail: 'a published receipt but no accepted submission record',
      });
      continue;
    }
    const ends = submissions.flatMap((s) => finished.get(s.result.jobId!) ?? []);
    if (!ends.some((end) => end.result.outcome === 'succeeded')) {
      const jobId = submissions[0]!.result.jobId;
      holes.push({
        kind: ends.length === 0 ? 'no-finish' : 'finish-mismatch',
        requestId,
        ...(jobId === undefined ? {} : { jobId }),
        detail:
          ends.length === 0
            ? 'a published receipt (the job succeeded) but no finish record'
            : `a published receipt but the finish record says ${ends.map((e) => e.result.outcome).join(', ')}`,
      });
    }
  }

  // One hole per (kind, job or request): the receipt and the job can both see a missing finish.
  const seen = new Set<string>();
  const unique = holes.filter((hole) => {
    const key = `${hole.kind} ${hole.jobId ?? ''} ${hole.requestId}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const notChecked: string[] = [];
  if (!input.jobs) {
    notChecked.push(
      'how jobs without a receipt ended (failed, cancelled or still running): the store does not say, the coordinator does',
    );
  }
  if (!input.jobs?.complete) {
    notChecked.push(
      'jobs that no audit entry names: only the coordinator lists its jobs, and no RPC does',
    );
  }
  notChecked.push('training requests: the audit log records forget requests only');
  return {
    ok: unique.length === 0,
    counts: {
      entries: input.entries.length,
      accepted: accepted.size,
      finished: finished.size,
      receipts: input.receipts.length,
      jobs: jobs.size,
    },
    holes: unique,
    notChecked,
  };
}

/** The request ids of the receipts the store's current revision publishes (`receipt/<id>`). */
export async function publishedReceiptIds(store: ObjectStore): Promise<string[]> {
  const manifest = await new ManifestStore(store).read();
  return Object.keys(manifest?.objects ?? {})
    .filter((name) => name.startsWith('receipt/'))
    .map((name) => name.slice('receipt/'.length));
}
