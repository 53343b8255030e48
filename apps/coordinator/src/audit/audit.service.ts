import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { forgetMethodToJSON, type SubmitForgetRequest } from '@lethe/proto';
import { type Identity, RpcError, statusName, unavailable } from '@lethe/rpc';
import type { ObjectStore } from '@lethe/store';
import type { Logger } from 'pino';
import type { ForgetJobRecord, JobRecord } from '../contract/job-record';
import { LOGGER, OBJECT_STORE } from '../config/tokens';
import {
  ANONYMOUS,
  type AuditActor,
  type AuditRecord,
  type AuditTarget,
  type AuditVerification,
  appendAudit,
  publishedReceiptIds,
  readAuditLog,
  verifyAuditTrail,
} from '@lethe/ledger';

/** The audit actor of an authenticated caller; `anonymous` on an open API. */
export function actorOf(identity: Identity | undefined): AuditActor {
  return identity
    ? { subject: identity.subject, role: identity.role, via: identity.via }
    : ANONYMOUS;
}

function targetOf(request: SubmitForgetRequest): AuditTarget | undefined {
  const target = request.target;
  if (target?.$case === 'className') return { className: target.value.slice(0, 256) };
  if (target?.$case === 'classIndex') return { classIndex: target.value };
  if (target?.$case === 'subjectIds') {
    return { subjects: target.value.ids.slice(0, 100).map((id) => id.slice(0, 256)) };
  }
  if (target?.$case === 'sampleIds') {
    return {
      sampleIds: target.value.ids.slice(0, 100).map((id) => id.slice(0, 256)),
      sampleCount: target.value.ids.length,
    };
  }
  return undefined;
}

/** The part of a SubmitForget entry that describes the request and its caller. */
function submission(
  request: SubmitForgetRequest,
  caller: { identity: Identity | undefined; peer: string },
): Omit<AuditRecord, 'result'> {
  const target = targetOf(request);
  return {
    action: 'SubmitForget',
    actor: actorOf(caller.identity),
    peer: caller.peer,
    requestId: request.requestId.slice(0, 100),
    method: methodOf(request),
    ...(target ? { target } : {}),
  };
}

/** `targeted` for FORGET_METHOD_TARGETED; `default` when unspecified. */
function methodOf(request: SubmitForgetRequest): string {
  const name = forgetMethodToJSON(request.method).replace(/^FORGET_METHOD_/, '');
  return name === 'UNSPECIFIED' ? 'default' : name.toLowerCase().replace(/_/g, '-');
}

/**
 * The audit log of forget requests in the object store (see audit-log.ts): every SubmitForget
 * (accepted, duplicate or refused, with its status) and every forget job's end. It fails
 * closed: a forget request is accepted only once its entry is stored, and a job's end is
 * retried until stored. Entries for duplicates and refusals are best effort (logged on failure).
 */
@Injectable()
export class AuditService implements OnApplicationShutdown {
  private readonly pending = new Set<Promise<unknown>>();
  private stopping = false;
  private readonly log: Logger;

  constructor(
    @Inject(OBJECT_STORE) private readonly store: ObjectStore,
    @Inject(LOGGER) log: Logger,
  ) {
    this.log = log.child({ component: 'audit' });
  }

  /**
   * Appends an entry (at `time`, default now). Resolves once stored; a failure is logged, and
   * rethrown as UNAVAILABLE with `strict` (an accepted request waits for its entry).
   */
  async record(record: AuditRecord, time = new Date(), strict = false): Promise<void> {
    const write = appendAudit(this.store, record, time);
    this.pending.add(write);
    void write.catch(() => undefined).finally(() => this.pending.delete(write));
    try {
      const entry = await write;
      this.log.info(
        {
          auditId: entry.id,
          action: entry.action,
          requestId: entry.requestId,
          subject: entry.actor.subject,
          outcome: entry.result.outcome,
        },
        'audit entry written',
      );
    } catch (error) {
      this.log.error(
        { err: error, action: record.action, requestId: record.requestId },
        'audit entry could not be written',
      );
      if (strict) {
        throw unavailable(
          'the audit log cannot be written, so the request is not accepted; retry later',
        );
      }
    }
  }

  /**
   * Records a SubmitForget answered with job `jobId`: `accepted` before that job exists — the
   * request is accepted only once this entry is durable (UNAVAILABLE otherwise, and no job is
   * created) — or `duplicate` when it named a request accepted before (best effort).
   */
  answered(
    outcome: 'accepted' | 'duplicate',
    request: SubmitForgetRequest,
    caller: { identity: Identity | undefined; peer: string },
    jobId: string,
    time: Date,
  ): Promise<void> {
    return this.record(
      { ...submission(request, caller), result: { outcome, status: 'OK', jobId } },
      time,
      outcome === 'accepted',
    );
  }

  /** Records a SubmitForget refused with `error` (by validation, by the auth check, ...). */
  refusedSubmit(
    request: SubmitForgetRequest,
    caller: { identity: Identity | undefined; peer: string },
    error: unknown,
    time = new Date(),
  ): Promise<void> {
    return this.record(
      {
        ...submission(request, caller),
        result: {
          outcome: 'refused',
          status: error instanceof RpcError ? statusName(error.code) : 'INTERNAL',
          message: (error instanceof Error ? error.message : String(error)).slice(0, 1000),
        },
      },
      time,
    );
  }

  /**
   * Records how a forget job ended (succeeded, failed or cancelled), for whoever submitted it,
   * retrying with backoff until the entry is stored (a full disk, a store that is down), then
   * calls `written`. At shutdown the retries stop; the next start records it (see JobsService).
   */
  async forgetFinished(job: ForgetJobRecord, written: () => void): Promise<void> {
    const request = job.request;
    const record: AuditRecord = {
      action: 'ForgetJobFinished',
      actor: request.submittedBy ?? ANONYMOUS,
      requestId: job.requestId,
      target: request.sampleIds
        ? {
            sampleIds: request.sampleIds.slice(0, 100),
            sampleCount: request.sampleIds.length,
            ...(request.subjects ? { subjects: request.subjects.slice(0, 100) } : {}),
          }
        : { className: request.className, classIndex: request.classIndex },
      // A joint model's samples: the method the client named (`samples`: the library default).
      method: request.sampleMethod ?? request.method,
      result: {
        outcome: job.state as 'succeeded' | 'failed' | 'cancelled',
        jobId: job.id,
        ...(job.error ? { message: job.error } : {}),
        ...(job.state === 'succeeded' ? { manifestRevision: job.manifestRevision } : {}),
      },
    };
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        await this.record(record, job.finishedAt ?? new Date(), true);
        written();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 500 * 2 ** attempt)));
      }
    }
  }

  /**
   * Checks the log against the coordinator's jobs (all of them: a forget job no entry names is
   * a hole) and the store's published receipts. No RPC returns it (the Coordinator API has no
   * audit call); `lethe audit --verify` runs the same check on the store, with GetJob per job.
   */
  async verify(
    jobs: readonly Pick<JobRecord, 'id' | 'kind' | 'requestId' | 'state'>[],
  ): Promise<AuditVerification> {
    return verifyAuditTrail({
      entries: await readAuditLog(this.store),
      receipts: await publishedReceiptIds(this.store),
      jobs: {
        complete: true,
        list: jobs
          .filter((job) => job.kind === 'forget')
          .map((job) => ({ jobId: job.id, requestId: job.requestId, state: job.state })),
      },
    });
  }

  /** Waits for entries still being written. */
  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.pending]);
  }
}
