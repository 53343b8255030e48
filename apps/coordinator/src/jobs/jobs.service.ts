import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { type Job, type JobProgress, JobState, LogLevel } from '@lethe/proto';
import { type ForgetClock, ForgetWindow } from '@lethe/sisa';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config/coordinator-config';
import { COORDINATOR_CONFIG, FORGET_CLOCK } from '../config/tokens';
import { AuditService } from '../audit/audit.service';
import { type JobReporter, EngineService } from '../engine/engine.service';
import { MetricsService } from '../metrics/metrics.service';
import { ModelStateService } from '../model/model-state.service';
import { LOGGER } from '../config/tokens';
import { WorkersService } from '../workers/workers.service';
import type { JobEnd } from '../engine/engine-protocol';
import { JobEvents } from './job-events';
import {
  type ForgetJobRecord,
  type JobKindName,
  type JobRecord,
  type JobStateName,
  type NewJob,
  TERMINAL_STATES,
} from '../contract/job-record';
import { JobRepository } from './job-repository';
import { toProtoJob } from './job-proto';

/** Why a job stopped when it was cancelled rather than failed. */
class JobCancelled extends Error {}

/**
 * The job queue: jobs that change the model run one at a time in submission order. Jobs live in
 * SQLite; at start, a job that was running when the coordinator stopped is queued again: a
 * forget completes exactly once (forgetting is idempotent by request id), a joint training
 * resumes from its last epoch checkpoint and a sisa training from its stored slices.
 */
@Injectable()
export class JobsService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly repository: JobRepository;
  readonly events = new JobEvents();
  private running: { id: string; abort: AbortController; done: Promise<void> } | undefined;
  private lastProgressSave = 0;
  private stopping = false;
  private closed = false;
  /** Running jobs CancelJob has asked to stop (JOB_STATE_CANCELLING until they have). */
  private readonly cancelling = new Set<string>();
  /** The current model's experts the running job retrains. */
  private retraining = new Set<number>();
  /** Jobs that were running when the coordinator last stopped (a training one resumes). */
  private readonly restarted = new Set<string>();
  /** Admission of new jobs, one request at a time (see admit). */
  private admission: Promise<unknown> = Promise.resolve();
  /** Sisa forgets queued within it of the oldest waiting one share its replay (forgetWindowMs). */
  private readonly forgetWindow: ForgetWindow;

  constructor(
    @Inject(COORDINATOR_CONFIG) config: CoordinatorConfig,
    @Inject(LOGGER) private readonly log: Logger,
    @Inject(WorkersService) private readonly workers: WorkersService,
    @Inject(EngineService) private readonly engine: EngineService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(MetricsService) private readonly metrics: MetricsService,
    @Inject(ModelStateService) private readonly models: ModelStateService,
    @Optional() @Inject(FORGET_CLOCK) clock?: ForgetClock,
  ) {
    this.forgetWindow = new ForgetWindow(config.forgetWindowMs ?? 0, clock);
    this.repository = new JobRepository(config.db);
    metrics.watchForgetQueue(() => this.active('forget').length);
  }

  onApplicationBootstrap(): void {
    for (const job of this.repository.list(['running'])) {
      this.repository.requeue(job.id);
      this.restarted.add(job.id);
      this.log.warn(
        { jobId: job.id, requestId: job.requestId },
        job.kind === 'forget'
          ? 'forget job requeued after restart'
          : 'training job requeued after restart: it resumes from its last checkpoint',
      );
    }
    // A job's end whose audit entry was not written before the last stop is written now.
    for (const job of this.repository.unauditedEnds()) this.auditEnd(job);
    this.publishedModel();
    this.pump();
  }

  /**
   * Runs `task` (checks, then submit) with no other admission in between: two requests with
   * the same id get one job, whatever their timing, and nextJobId() is the id submit gives.
   */
  admit<T>(task: () => Promise<T>): Promise<T> {
    const run = this.admission.then(task, task);
    this.admission = run.catch(() => undefined);
    return run;
  }

  /** The current model's experts the running job is retraining (none when no job runs). */
  retrainingExperts(): ReadonlySet<number> {
    return this.retraining;
  }

  /** The id the next submitted job gets; valid inside admit(). */
  nextJobId(): string {
    return this.repository.nextJobId();
  }

  /** A job as the API shows it: RUNNING jobs asked to stop are CANCELLING. */
  toProto(job: JobRecord): Job {
    const proto = toProtoJob(job);
    if (job.state === 'running' && this.cancelling.has(job.id)) {
      proto.state = JobState.JOB_STATE_CANCELLING;
    }
    if (job.state === 'queued' && isSisaForget(job) && this.forgetWindow.windowMs > 0) {
      const oldest = this.repository.list(['queued']).find(isSisaForget) ?? job;
      proto.forgetWindowClosesAt = new Date(this.forgetWindow.closesAt(oldest.createdAt.getTime()));
    }
    return proto;
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.forgetWindow.cancel();
    // A job interrupted here is requeued at the next start (training resumes from a checkpoint).
    this.running?.abort.abort();
    await this.running?.done.catch(() => undefined);
    this.closed = true;
    this.repository.close();
  }

  /** Accepts a job, or returns the live or succeeded job that already holds its request id. */
  submit(job: NewJob): { job: JobRecord; existing: boolean } {
    const { kind, requestId } = job;
    const result = this.repository.insertUnlessExists(job);
    if (!result.existing) {
      this.log.info({ jobId: result.job.id, kind, requestId }, 'job queued');
      const proto = this.toProto(result.job);
      this.events.publish(result.job.id, {
        $case: 'status',
        value: { state: proto.state, previousState: 0, job: proto },
      });
      if (proto.forgetWindowClosesAt) {
        this.events.publish(result.job.id, {
          $case: 'log',
          value: {
            level: LogLevel.LOG_LEVEL_INFO,
            source: 'coordinator',
            text: `waiting for the forget window: the batch closes at ${proto.forgetWindowClosesAt.toISOString()}, then one replay serves every request in it`,
          },
        });
      }
      this.pump();
    }
    return result;
  }

  get(id: string): JobRecord | undefined {
    return this.repository.get(id);
  }

  /** Queued and running jobs, of one kind if given (narrowed to it). */
  active<K extends JobKindName = JobKindName>(kind?: K): Extract<JobRecord, { kind: K }>[] {
    return this.repository
      .list(['queued', 'running'])
      .filter(
        (job): job is Extract<JobRecord, { kind: K }> => kind === undefined || job.kind === kind,
      );
  }

  /** Cancels a job: a queued one at once, a running one once it stops (CANCELLING until then). */
  cancel(id: string): JobRecord {
    const job = this.repository.get(id)!;
    if (job.state === 'queued') return this.transition(job, 'cancelled');
    if (job.state === 'running' && this.running?.id === id) {
      this.cancelling.add(id);
      this.running.abort.abort();
    }
    return job;
  }

  private pump(): void {
    if (this.running || this.stopping) return;
    const next = this.repository.list(['queued'])[0];
    if (!next) return;
    // A sisa forget waits (QUEUED) until the window of the oldest one queued closes: the pump
    // runs again then, and runSisaBatch takes every sisa forget queued by that time.
    if (isSisaForget(next)) {
      if (this.forgetWindow.wait(next.createdAt.getTime(), () => this.pump())) return;
    } else this.forgetWindow.cancel();
    const abort = new AbortController();
    const done = this.run(next, abort.signal).finally(() => {
      this.running = undefined;
      this.retraining = new Set();
      this.workers.placement.busy = false;
      this.workers.placement.place({ rebalance: true });
      setImmediate(() => this.pump());
    });
    this.running = { id: next.id, abort, done };
  }

  private async run(queued: JobRecord, signal: AbortSignal): Promise<void> {
    const job = this.transition(queued, 'running');
    this.workers.placement.busy = true;
    const log = this.log.child({ jobId: job.id, requestId: job.requestId || undefined });
    const reporter = this.reporter(job.id, log);
    const abort = (): void => this.engine.abortJob(job.id);
    signal.addEventListener('abort', abort);
    try {
      let end: JobEnd;
      if (job.kind === 'training') {
        [end] = (await this.engine.runJob(
          {
            kind: 'training',
            jobId: job.id,
            seq: job.seq,
            request: job.request,
            requestId: job.requestId,
            restarted: this.restarted.has(job.id),
          },
          reporter,
        )) as [JobEnd];
      } else if (job.request.method === 'sisa-replay') {
        end = await this.runSisaBatch(job, reporter);
      } else {
        [end] = (await this.engine.runJob(
          { kind: 'forget', jobId: job.id, seq: job.seq, request: job.request },
          reporter,
        )) as [JobEnd];
      }
      if ('error' in end) throw new Error(end.error);
      if (signal.aborted && this.stopping) throw new JobCancelled('coordinator stopping');
      this.transition(this.repository.get(job.id)!, 'succeeded', {
        manifestRevision: end.manifestRevision,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (this.stopping || this.engine.stopping) {
        log.warn({ err: message }, 'job interrupted by shutdown');
        return;
      }
      if (signal.aborted) {
        this.transition(this.repository.get(job.id)!, 'cancelled');
        return;
      }
      reporter.log('error', message.split('\n')[0]!);
      this.transition(this.repository.get(job.id)!, 'failed', { error: message.split('\n')[0]! });
    } finally {
      signal.removeEventListener('abort', abort);
    }
  }

  /** A job's reports from the engine thread: progress and logs to WatchJob, checkpoints to SQLite. */
  private reporter(jobId: string, log: Logger): JobReporter {
    return {
      progress: (progress) => this.progress(jobId, progress),
      log: (level, text) => {
        log[level](text);
        this.events.publish(jobId, {
          $case: 'log',
          value: {
            level: {
              info: LogLevel.LOG_LEVEL_INFO,
              warn: LogLevel.LOG_LEVEL_WARN,
              error: LogLevel.LOG_LEVEL_ERROR,
            }[level],
            source: 'coordinator',
            text,
          },
        });
      },
      saveCheckpoints: (checkpoints) => this.repository.saveCheckpoints(jobId, checkpoints),
      retraining: (experts) => {
        this.retraining = new Set(experts);
      },
    };
  }

  /**
   * Exact (sisa) forget requests queued behind this one join its replay: one retraining and one
   * manifest revision for all, each job ending with its own receipt — or its own error.
   */
  private async runSisaBatch(leader: ForgetJobRecord, reporter: JobReporter): Promise<JobEnd> {
    const companions = this.repository.list(['queued']).filter(isSisaForget);
    const batch = [leader, ...companions.map((j) => this.transition(j, 'running'))];
    for (const j of companions) {
      this.events.publish(j.id, {
        $case: 'log',
        value: {
          level: LogLevel.LOG_LEVEL_INFO,
          source: 'coordinator',
          text: `batched into the replay of ${leader.id}`,
        },
      });
    }
    let ends: JobEnd[];
    try {
      ends = await this.engine.runJob(
        {
          kind: 'sisa-forget',
          jobId: leader.id,
          seq: leader.seq,
          requests: [leader, ...companions].map((j) => j.request),
        },
        reporter,
      );
    } catch (error) {
      const message = (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
      if (!this.stopping && !this.engine.stopping) {
        for (const j of companions)
          this.transition(this.repository.get(j.id)!, 'failed', { error: message });
      }
      throw error;
    }
    batch.slice(1).forEach((j, i) => {
      const end = ends[i + 1]!;
      this.transition(
        this.repository.get(j.id)!,
        'error' in end ? 'failed' : 'succeeded',
        'error' in end ? { error: end.error } : { manifestRevision: end.manifestRevision },
      );
    });
    return ends[0]!;
  }

  private progress(jobId: string, progress: JobProgress): void {
    this.events.publish(jobId, { $case: 'progress', value: progress });
    const now = Date.now();
    if (now - this.lastProgressSave > 1_000) {
      this.lastProgressSave = now;
      this.repository.saveProgress(jobId, progress);
    }
  }

  private transition(
    job: JobRecord,
    state: JobStateName,
    details: { error?: string; manifestRevision?: number } = {},
  ): JobRecord {
    const previous = toProtoJob(job).state;
    let next: JobRecord;
    if (state === 'running') next = this.repository.markRunning(job.id);
    else if (TERMINAL_STATES.has(state)) {
      next = this.repository.finish(job.id, state as 'succeeded' | 'failed' | 'cancelled', details);
    } else next = this.repository.requeue(job.id);
    const proto = toProtoJob(next);
    this.events.publish(job.id, {
      $case: 'status',
      value: { state: proto.state, previousState: previous, job: proto },
    });
    this.log.info(
      { jobId: job.id, requestId: job.requestId || undefined, kind: job.kind, state, ...details },
      'job state',
    );
    if (TERMINAL_STATES.has(next.state)) {
      this.cancelling.delete(next.id);
      this.restarted.delete(next.id);
      this.metrics.jobFinished(next.kind, next.state);
      if (next.state === 'succeeded') this.publishedModel();
      if (next.kind === 'forget') {
        this.metrics.forgetFinished(
          next.request.method,
          next.state,
          ((next.finishedAt ?? new Date()).getTime() - next.createdAt.getTime()) / 1000,
        );
        this.auditEnd(next);
      }
    }
    return next;
  }

  /** The model now published (at start, after a job): its routing health into the metrics. */
  private publishedModel(): void {
    const state = this.models.state;
    void state
      .current()
      .then((current) => (current ? state.routingHealth(current) : undefined))
      .then((health) => this.metrics.setRoutingHealth(health))
      .catch((error: unknown) =>
        this.log.warn({ err: error }, 'routing health of the published model not read'),
      );
  }

  /** A forget request's end into the audit log, retried in the background until written. */
  private auditEnd(job: ForgetJobRecord): void {
    void this.audit.forgetFinished(job, () => {
      if (!this.closed) this.repository.markEndAudited(job.id);
    });
  }
}

/**
 * An exact (sisa) forget of samples: the jobs a forget window batches. A joint model's samples
 * (method `samples`) are forgotten approximately, each request a job of its own.
 */
function isSisaForget(job: JobRecord): job is ForgetJobRecord {
  return job.kind === 'forget' && job.request.method === 'sisa-replay';
}
