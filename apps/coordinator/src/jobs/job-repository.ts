import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { JobProgress } from '@lethe/proto';
import { IntegrityError } from '@lethe/store';
import type { z } from 'zod';
import { ForgetJobRequestSchema } from '../contract/forget-request';
import {
  type ForgetJobRecord,
  type JobKindName,
  type JobRecord,
  type JobStateName,
  type NewJob,
  TERMINAL_STATES,
} from '../contract/job-record';
import { TrainingRequestSchema } from '../contract/training-request';

interface JobRow {
  id: string;
  seq: number;
  kind: string;
  state: string;
  request_id: string;
  fingerprint: string;
  request: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  progress: string | null;
  error: string | null;
  manifest_revision: number;
  checkpoints: string | null;
}

/**
 * Jobs in an embedded SQLite database. Every change is one transaction in WAL mode with full
 * fsync, so a coordinator killed at any point restarts with each accepted request either queued,
 * running (to be resumed or failed) or finished — never lost, never half-written.
 */
export class JobRepository {
  private readonly db: Database.Database;

  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        request_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        request TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        progress TEXT,
        error TEXT,
        manifest_revision INTEGER NOT NULL DEFAULT 0,
        checkpoints TEXT
      );
      CREATE INDEX IF NOT EXISTS jobs_by_request ON jobs (kind, request_id);
    `);
    // Added after the first release: databases from before get the column on open.
    const columns = this.db.prepare('PRAGMA table_info(jobs)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'end_audited')) {
      this.db.exec('ALTER TABLE jobs ADD COLUMN end_audited INTEGER NOT NULL DEFAULT 0');
    }
  }

  /** The id the next inserted job gets (admission is serialised, so it is the one it gets). */
  nextJobId(): string {
    const seq =
      ((this.db.prepare('SELECT MAX(seq) AS seq FROM jobs').get() as { seq: number | null }).seq ??
        0) + 1;
    return `job-${String(seq).padStart(6, '0')}`;
  }

  /** Records that a finished job's end is in the audit log. */
  markEndAudited(id: string): void {
    this.db.prepare('UPDATE jobs SET end_audited = 1 WHERE id = ?').run(id);
  }

  /** Finished forget jobs whose end is not in the audit log yet (the write failed, or a crash). */
  unauditedEnds(): ForgetJobRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM jobs WHERE kind = 'forget' AND end_audited = 0 AND state IN ('succeeded', 'failed', 'cancelled') ORDER BY seq`,
      )
      .all() as JobRow[];
    return rows.map(fromRow).filter((job): job is ForgetJobRecord => job.kind === 'forget');
  }

  /**
   * Inserts a job unless an active or succeeded job of the same kind holds the request id;
   * returns that job instead. Failed and cancelled jobs free their id, as the API promises.
   */
  insertUnlessExists(job: NewJob): { job: JobRecord; existing: boolean } {
    return this.db.transaction(() => {
      if (job.requestId !== '') {
        const row = this.db
          .prepare(
            `SELECT * FROM jobs WHERE kind = ? AND request_id = ? AND state NOT IN ('failed', 'cancelled') ORDER BY seq DESC LIMIT 1`,
          )
          .get(job.kind, job.requestId) as JobRow | undefined;
        if (row) return { job: fromRow(row), existing: true };
      }
      const id = this.nextJobId();
      const seq = Number(id.slice('job-'.length));
      this.db
        .prepare(
          `INSERT INTO jobs (id, seq, kind, state, request_id, fingerprint, request, created_at)
           VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)`,
        )
        .run(
          id,
          seq,
          job.kind,
          job.requestId,
          job.fingerprint,
          JSON.stringify(job.request),
          Date.now(),
        );
      return { job: this.get(id)!, existing: false };
    })();
  }

  get(id: string): JobRecord | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** The latest job of a kind holding a request id, whatever its state. */
  byRequestId(kind: JobKindName, requestId: string): JobRecord | undefined {
    const row = this.db
      .prepare('SELECT * FROM jobs WHERE kind = ? AND request_id = ? ORDER BY seq DESC LIMIT 1')
      .get(kind, requestId) as JobRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(states?: readonly JobStateName[]): JobRecord[] {
    const rows = (
      states
        ? this.db
            .prepare(
              `SELECT * FROM jobs WHERE state IN (${states.map(() => '?').join(',')}) ORDER BY seq`,
            )
            .all(...states)
        : this.db.prepare('SELECT * FROM jobs ORDER BY seq').all()
    ) as JobRow[];
    return rows.map(fromRow);
  }

  markRunning(id: string): JobRecord {
    this.db
      .prepare(`UPDATE jobs SET state = 'running', started_at = ? WHERE id = ?`)
      .run(Date.now(), id);
    return this.get(id)!;
  }

  finish(
    id: string,
    state: 'succeeded' | 'failed' | 'cancelled',
    details: { error?: string; manifestRevision?: number } = {},
  ): JobRecord {
    this.db
      .prepare(
        `UPDATE jobs SET state = ?, finished_at = ?, error = ?, manifest_revision = ? WHERE id = ?`,
      )
      .run(state, Date.now(), details.error ?? null, details.manifestRevision ?? 0, id);
    return this.get(id)!;
  }

  /** Back to the queue (a forget job interrupted by a restart runs again from the start). */
  requeue(id: string): JobRecord {
    this.db
      .prepare(`UPDATE jobs SET state = 'queued', started_at = NULL, progress = NULL WHERE id = ?`)
      .run(id);
    return this.get(id)!;
  }

  saveProgress(id: string, progress: JobProgress): void {
    this.db.prepare('UPDATE jobs SET progress = ? WHERE id = ?').run(JSON.stringify(progress), id);
  }

  saveCheckpoints(id: string, checkpoints: Record<string, unknown>): void {
    this.db
      .prepare('UPDATE jobs SET checkpoints = ? WHERE id = ?')
      .run(JSON.stringify(checkpoints), id);
  }

  close(): void {
    this.db.close();
  }
}

const STATES: ReadonlySet<string> = new Set<JobStateName>([
  'queued',
  'running',
  ...TERMINAL_STATES,
]);

/**
 * The one reader of a job row: its request is parsed by its kind's schema here, once, so the
 * rest of the coordinator narrows on `kind` instead of casting. A row that does not match is an
 * integrity error (DATA_LOSS at the API) naming the job, never a request run half-understood.
 */
function fromRow(row: JobRow): JobRecord {
  const fields = {
    id: row.id,
    seq: row.seq,
    state: row.state as JobStateName,
    requestId: row.request_id,
    fingerprint: row.fingerprint,
    createdAt: new Date(row.created_at),
    ...(row.started_at === null ? {} : { startedAt: new Date(row.started_at) }),
    ...(row.finished_at === null ? {} : { finishedAt: new Date(row.finished_at) }),
    ...(row.progress === null ? {} : { progress: JSON.parse(row.progress) as JobProgress }),
    ...(row.error === null ? {} : { error: row.error }),
    manifestRevision: row.manifest_revision,
    ...(row.checkpoints === null
      ? {}
      : { checkpoints: JSON.parse(row.checkpoints) as Record<string, unknown> }),
  };
  if (!STATES.has(row.state)) throw corrupt(row, `unknown state ${JSON.stringify(row.state)}`);
  if (row.kind === 'training') {
    return { ...fields, kind: 'training', request: parseRequest(row, TrainingRequestSchema) };
  }
  if (row.kind === 'forget') {
    return { ...fields, kind: 'forget', request: parseRequest(row, ForgetJobRequestSchema) };
  }
  throw corrupt(row, `unknown kind ${JSON.stringify(row.kind)}`);
}

function parseRequest<T>(row: JobRow, schema: z.ZodType<T>): T {
  let json: unknown;
  try {
    json = JSON.parse(row.request);
  } catch (error) {
    throw corrupt(row, `its request is not valid JSON`, error);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw corrupt(
      row,
      `its ${row.kind} request does not match the schema (${where}${issue?.message ?? 'invalid'})`,
      parsed.error,
    );
  }
  return parsed.data;
}

function corrupt(row: JobRow, problem: string, cause?: unknown): IntegrityError {
  return new IntegrityError(`job ${row.id}`, `stored job row is damaged: ${problem}`, { cause });
}
