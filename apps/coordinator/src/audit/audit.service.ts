import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import {
  forgetMethodToJSON,
  type SubmitForgetRequest,
  type SubmitForgetResponse,
} from '@lethe/proto';
import { type Identity, RpcError, statusName } from '@lethe/rpc';
import type { ObjectStore } from '@lethe/store';
import type { Logger } from 'pino';
import type { ForgetJobRequest } from '../forgetting/forget-request';
import type { JobRecord } from '../jobs/job-record';
import { LOGGER, OBJECT_STORE } from '../tokens';
import {
  ANONYMOUS,
  type AuditActor,
  type AuditRecord,
  type AuditTarget,
  appendAudit,
} from './audit-log';

/** The audit actor of an authenticated caller; `anonymous` on an open API. */
export function actorOf(identity: Identity | undefined): AuditActor {
  return identity
    ? { subject: identity.subject, role: identity.role, via: identity.via }
    : ANONYMOUS;
}

function targetOf(request: SubmitForgetRequest): AuditTarget | undefined {
  const target = request.target;
  if (target?.$case === 'className') return { className: target.value };
  if (target?.$case === 'classIndex') return { classIndex: target.value };
  if (target?.$case === 'sampleIds') {
    return { sampleIds: target.value.ids.slice(0, 100), sampleCount: target.value.ids.length };
  }
  return undefined;
}

/** `targeted` for FORGET_METHOD_TARGETED; `default` when unspecified. */
function methodOf(request: SubmitForgetRequest): string {
  const name = forgetMethodToJSON(request.method).replace(/^FORGET_METHOD_/, '');
  return name === 'UNSPECIFIED' ? 'default' : name.toLowerCase().replace(/_/g, '-');
}

/**
 * The audit log of forget requests in the object store (see audit-log.ts): every SubmitForget
 * (accepted, duplicate or refused, with its status) and every forget job's end. Writing an entry
 * never fails the request it records; a failed write is logged as an error.
 */
@Injectable()
export class AuditService implements OnApplicationShutdown {
  private readonly pending = new Set<Promise<unknown>>();
  private readonly log: Logger;

  constructor(
    @Inject(OBJECT_STORE) private readonly store: ObjectStore,
    @Inject(LOGGER) log: Logger,
  ) {
    this.log = log.child({ component: 'audit' });
  }

  /** Appends an entry (at `time`, default now); resolves once stored (or its failure logged). */
  record(record: AuditRecord, time = new Date()): Promise<void> {
    const write = appendAudit(this.store, record, time).then(
      (entry) => {
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
      },
      (error: unknown) => {
        this.log.error(
          { err: error, action: record.action, requestId: record.requestId },
          'audit entry could not be written',
        );
      },
    );
    this.pending.add(write);
    void write.finally(() => this.pending.delete(write));
    return write;
  }

  /**
   * Runs a SubmitForget and records its answer: accepted or duplicate with the job, or refused
   * with the status it ended with. The answer is passed on unchanged.
   */
  async submitForget(
    request: SubmitForgetRequest,
    caller: { identity: Identity | undefined; peer: string },
    work: () => Promise<SubmitForgetResponse>,
  ): Promise<SubmitForgetResponse> {
    // The entry is dated when the request arrived, so it sorts before its job's end.
    const time = new Date();
    const base = {
      action: 'SubmitForget' as const,
      actor: actorOf(caller.identity),
      peer: caller.peer,
      requestId: request.requestId,
      method: methodOf(request),
      ...(targetOf(request) ? { target: targetOf(request)! } : {}),
    };
    let response: SubmitForgetResponse;
    try {
      response = await work();
    } catch (error) {
      await this.refusedSubmit(request, caller, error, time);
      throw error;
    }
    await this.record(
      {
        ...base,
        result: {
          outcome: response.duplicate ? 'duplicate' : 'accepted',
          status: 'OK',
          ...(response.job ? { jobId: response.job.jobId } : {}),
        },
      },
      time,
    );
    return response;
  }

  /** Records a SubmitForget refused with `error` (by validation, by the auth check, ...). */
  refusedSubmit(
    request: SubmitForgetRequest,
    caller: { identity: Identity | undefined; peer: string },
    error: unknown,
    time = new Date(),
  ): Promise<void> {
    const target = targetOf(request);
    return this.record(
      {
        action: 'SubmitForget',
        actor: actorOf(caller.identity),
        peer: caller.peer,
        requestId: request.requestId,
        method: methodOf(request),
        ...(target ? { target } : {}),
        result: {
          outcome: 'refused',
          status: error instanceof RpcError ? statusName(error.code) : 'INTERNAL',
          message: error instanceof Error ? error.message : String(error),
        },
      },
      time,
    );
  }

  /** Records how a forget job ended (succeeded, failed or cancelled), for whoever submitted it. */
  forgetFinished(job: JobRecord): Promise<void> {
    const request = job.request as ForgetJobRequest;
    return this.record({
      action: 'ForgetJobFinished',
      actor: request.submittedBy ?? ANONYMOUS,
      requestId: job.requestId,
      target: { className: request.className, classIndex: request.classIndex },
      method: request.method,
      result: {
        outcome: job.state as 'succeeded' | 'failed' | 'cancelled',
        jobId: job.id,
        ...(job.error ? { message: job.error } : {}),
        ...(job.state === 'succeeded' ? { manifestRevision: job.manifestRevision } : {}),
      },
    });
  }

  /** Waits for entries still being written. */
  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }
}
