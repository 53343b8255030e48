import type * as grpc from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import {
  type CoordinatorServer,
  type JobEvent,
  JobState,
  type WatchJobRequest,
} from '@lethe/proto';
import {
  callerOf,
  failedPrecondition,
  notFound,
  serverStreamHandler,
  unaryHandler,
  unavailable,
} from '@lethe/rpc';
import type { Logger } from 'pino';
import { ClusterService } from '../services/cluster.service';
import { ForgettingService } from '../services/forgetting.service';
import type { JobRecord } from '../contract/job-record';
import { TERMINAL_STATES } from '../contract/job-record';
import { JobsService } from '../jobs/jobs.service';
import { ServingService } from '../services/serving.service';
import { LOGGER } from '../config/tokens';
import { TrainingService } from '../services/training.service';
import { checkJobId, normaliseListReceipts } from '../contract/request-validation';

const FINAL: readonly JobState[] = [
  JobState.JOB_STATE_SUCCEEDED,
  JobState.JOB_STATE_FAILED,
  JobState.JOB_STATE_CANCELLED,
];

/**
 * The public Coordinator service: each method maps its request to one call of a service and
 * that call's errors to status codes (services throw RpcError).
 */
@Injectable()
export class CoordinatorApi {
  /** Open WatchJob streams, each by its way of ending (at shutdown). */
  private readonly streams = new Set<(error: Error) => void>();

  constructor(
    @Inject(LOGGER) private readonly log: Logger,
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(TrainingService) private readonly training: TrainingService,
    @Inject(ForgettingService) private readonly forgetting: ForgettingService,
    @Inject(ServingService) private readonly serving: ServingService,
    @Inject(ClusterService) private readonly cluster: ClusterService,
  ) {}

  implementation(): CoordinatorServer {
    const log = this.log.child({ component: 'api' });
    return {
      startTraining: unaryHandler((r) => this.training.start(r), log),
      watchJob: serverStreamHandler((r, call) => this.watchJob(r, call), log),
      getJob: unaryHandler(async (r) => this.jobs.toProto(this.job(r.jobId)), log),
      cancelJob: unaryHandler(async (r) => {
        const job = this.job(r.jobId);
        if (job.state === 'succeeded' || job.state === 'failed') {
          throw failedPrecondition(`job ${job.id} already ${job.state}`);
        }
        return this.jobs.toProto(this.jobs.cancel(job.id));
      }, log),
      submitForget: unaryHandler(
        (r, call) =>
          this.forgetting.submit(r, { identity: callerOf(call), peer: call.getPeer() }, call),
        log,
      ),
      getReceipt: unaryHandler((r) => this.forgetting.receipt(r.requestId), log),
      listReceipts: unaryHandler((r) => this.forgetting.receipts(normaliseListReceipts(r)), log),
      evaluate: unaryHandler((r, call) => this.serving.evaluate(r, call), log),
      predict: unaryHandler((r, call) => this.serving.predict(r, call), log),
      listSamples: unaryHandler((r) => this.forgetting.samples(r), log),
      listExperts: unaryHandler(() => this.cluster.experts(), log),
      listWorkers: unaryHandler(async () => this.cluster.workerList(), log),
    };
  }

  /** Ends every open WatchJob stream with UNAVAILABLE: the coordinator is stopping. */
  endStreams(): void {
    const error = unavailable(
      'the coordinator is shutting down; watch the job again after it restarts',
    );
    for (const end of [...this.streams]) end(error);
  }

  private job(jobId: string): JobRecord {
    const job = this.jobs.get(checkJobId(jobId));
    if (!job) throw notFound(`unknown job ${JSON.stringify(jobId)}`);
    return job;
  }

  /** A status snapshot, then the job's events until one reports a final state. */
  private async watchJob(
    request: WatchJobRequest,
    call: grpc.ServerWritableStream<WatchJobRequest, JobEvent>,
  ): Promise<void> {
    const job = this.job(request.jobId);
    await new Promise<void>((resolve, reject) => {
      const events: JobEvent[] = [];
      // Subscribe before the snapshot so that nothing falls between the two.
      const unsubscribe = this.jobs.events.subscribe(job.id, (event) => {
        if (event.event?.$case === 'log' && !request.includeLogs) return;
        events.push(event);
        flush();
      });
      const current = this.jobs.get(job.id)!;
      const proto = this.jobs.toProto(current);
      let ended = false;
      const end = (error?: Error): void => {
        if (ended) return;
        ended = true;
        unsubscribe();
        this.streams.delete(end);
        if (error) reject(error);
        else {
          call.end();
          resolve();
        }
      };
      this.streams.add(end);
      const flush = (): void => {
        while (events.length > 0 && !ended) {
          const event = events.shift()!;
          call.write(event);
          if (event.event?.$case === 'status' && FINAL.includes(event.event.value.state)) end();
        }
      };
      call.on('cancelled', () => end());
      call.write({
        jobId: job.id,
        sequence: this.jobs.events.latestSequence(job.id),
        time: new Date(),
        event: { $case: 'status', value: { state: proto.state, previousState: 0, job: proto } },
      });
      if (TERMINAL_STATES.has(current.state)) end();
      else flush();
    });
  }
}
