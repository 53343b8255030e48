import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { type JobProgress, LogLevel } from '@lethe/proto';
import type { ObjectStore } from '@lethe/store';
import type { Logger } from 'pino';
import { AuditService } from '../audit/audit.service';
import type { CoordinatorConfig } from '../config/coordinator-config';
import { runForgetJob, runSisaForgetBatch } from '../forgetting/forget-runner';
import type { ForgetJobRequest } from '../forgetting/forget-request';
import { MetricsService } from '../metrics/metrics.service';
import { ModelStateService } from '../model/model-state.service';
import { COORDINATOR_CONFIG, LOGGER, OBJECT_STORE } from '../tokens';
import type { TrainingRequest } from '../training/training-request';
import { runTrainingJob } from '../training/training-runner';
import { WorkersService } from '../workers/workers.service';
import type { JobContext } from './job-context';
import { JobEvents } from './job-events';
import { type JobKindName, type JobRecord, type JobStateName, TERMINAL_STATES } from './job-record';
import { JobRepository } from './job-repository';
import { toProtoJob } from './job-proto';

/** Why a job stopped when it was cancelled rather than failed. */
class JobCancelled extends Error {}

/**
 * The job queue: jobs that change the model run one at a time in submission order. Jobs live in
 * SQLite; at start, a forget job that was running when the coordinator stopped is queued again
 * (forgetting is idempotent by request id, so it completes exactly once) and a training job is
 * failed with a clear message (its experts' checkpoints stay in the store).
 */
@Injectable()
export class JobsService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly repository: JobRepository;
  readonly events = new JobEvents();
  private running: { id: string; abort: AbortController; done: Promise<void> } | undefined;
  private lastProgressSave = 0;
  private stopping = false;

  constructor(
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly log: Logger,
    @Inject(OBJECT_STORE) private readonly store: ObjectStore,
    @Inject(WorkersService) private readonly workers: WorkersService,
    @Inject(ModelStateService) private readonly models: ModelStateService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(MetricsService) private readonly metrics: MetricsService,
  ) {
    this.repository = new JobRepository(config.db);
    metrics.watchForgetQueue(() => this.active('forget').length);
  }

  onApplicationBootstrap(): void {
    for (const job of this.repository.list(['running'])) {
      if (job.kind === 'forget') {
        this.repository.requeue(job.id);
        this.log.warn(
          { jobId: job.id, requestId: job.requestId },
          'forget job requeued after restart',
        );
      } else {
        this.transition(job, 'failed', {
          error: 'interrupted by a coordinator restart; start training again',
        });
      }
    }
    this.pump();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    // A forget job interrupted here is requeued at the next start; training is failed then.
    this.running?.abort.abort();
    await this.running?.done.catch(() => undefined);
    this.repository.close();
  }

  /** Accepts a job, or returns the live or succeeded job that already holds its request id. */
  submit(
    kind: JobKindName,
    requestId: string,
    fingerprint: string,
    request: TrainingRequest | ForgetJobRequest,
  ): { job: JobRecord; existing: boolean } {
    const result = this.repository.insertUnlessExists({ kind, requestId, fingerprint, request });
    if (!result.existing) {
      this.log.info({ jobId: result.job.id, kind, requestId }, 'job queued');
      this.events.publish(result.job.id, {
        $case: 'status',
        value: {
          state: toProtoJob(result.job).state,
          previousState: 0,
          job: toProtoJob(result.job),
        },
      });
      this.pump();
    }
    return result;
  }

  get(id: string): JobRecord | undefined {
    return this.repository.get(id);
  }

  active(kind?: JobKindName): JobRecord[] {
    return this.repository
      .list(['queued', 'running'])
      .filter((job) => kind === undefined || job.kind === kind);
  }

  cancel(id: string): JobRecord {
    const job = this.repository.get(id)!;
    if (job.state === 'queued') return this.transition(job, 'cancelled');
    if (job.state === 'running' && this.running?.id === id) this.running.abort.abort();
    return job;
  }

  private pump(): void {
    if (this.running || this.stopping) return;
    const next = this.repository.list(['queued'])[0];
    if (!next) return;
    const abort = new AbortController();
    const done = this.run(next, abort.signal).finally(() => {
      this.running = undefined;
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
    const context: JobContext = {
      jobId: job.id,
      seq: job.seq,
      signal,
      progress: (progress) => this.progress(job.id, progress),
      log: (level, text) => {
        log[level](text);
        this.events.publish(job.id, {
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
    };
    const deps = {
      store: this.store,
      models: this.models.state,
      placement: this.workers.placement,
      registry: this.workers.registry,
      log,
      workerDeadlineMs: this.config.workerDeadlineMs,
      metrics: this.metrics,
    };
    try {
      let revision: number;
      if (job.kind === 'training') {
        const outcome = await runTrainingJob(
          {
            ...deps,
            checkpointEverySteps: this.config.checkpointEverySteps,
            saveCheckpoints: (id, checkpoints) => this.repository.saveCheckpoints(id, checkpoints),
          },
          job.request as TrainingRequest,
          context,
        );
        revision = outcome.manifestRevision;
      } else if ((job.request as ForgetJobRequest).sampleIds) {
        revision = await this.runSisaBatch(job, deps, context);
      } else {
        const receipt = await runForgetJob(deps, job.request as ForgetJobRequest, context);
        revision = receipt.manifest.after;
      }
      if (signal.aborted && this.stopping) throw new JobCancelled('coordinator stopping');
      this.transition(this.repository.get(job.id)!, 'succeeded', { manifestRevision: revision });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (this.stopping) {
        log.warn({ err: message }, 'job interrupted by shutdown');
        return;
      }
      if (signal.aborted) {
        this.transition(this.repository.get(job.id)!, 'cancelled');
        return;
      }
      context.log('error', message.split('\n')[0]!);
      this.transition(this.repository.get(job.id)!, 'failed', { error: message.split('\n')[0]! });
    }
  }

  /**
   * Exact (sisa) forget requests queued behind this one join its replay: one retraining and one
   * manifest revision for all, each job ending with its own receipt — or its own error.
   */
  private async runSisaBatch(
    leader: JobRecord,
    deps: Parameters<typeof runSisaForgetBatch>[0],
    context: JobContext,
  ): Promise<number> {
    const companions = this.repository
      .list(['queued'])
      .filter((j) => j.kind === 'forget' && (j.request as ForgetJobRequest).sampleIds);
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
    let outcomes;
    try {
      outcomes = await runSisaForgetBatch(
        deps,
        batch.map((j) => j.request as ForgetJobRequest),
        context,
      );
    } catch (error) {
      const message = (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
      for (const j of companions)
        this.transition(this.repository.get(j.id)!, 'failed', { error: message });
      throw error;
    }
    batch.slice(1).forEach((j, i) => {
      const outcome = outcomes[i + 1]!;
      if ('receipt' in outcome) {
        this.transition(this.repository.get(j.id)!, 'succeeded', {
          manifestRevision: outcome.receipt.manifest.after,
        });
      } else {
        const message =
          outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
        this.transition(this.repository.get(j.id)!, 'failed', { error: message.split('\n')[0]! });
      }
    });
    const own = outcomes[0]!;
    if ('error' in own) throw own.error;
    return own.receipt.manifest.after;
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
    if (TERMINAL_STATES.has(next.state)) this.metrics.jobFinished(next.kind, next.state);
    // A forget request's end goes to the audit log (in the background; AuditService waits for
    // it at shutdown).
    if (next.kind === 'forget' && TERMINAL_STATES.has(next.state))
      void this.audit.forgetFinished(next);
    return next;
  }
}
