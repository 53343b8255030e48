import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { MoEConfig } from '@lethe/model';
import type { EvaluateResponse, JobProgress, PredictResponse } from '@lethe/proto';
import { cancelled, type TlsMaterial } from '@lethe/rpc';
import type { ForgetPreview, SampleForgetPreview } from '@lethe/unlearning';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config/coordinator-config';
import { MetricsService } from '../metrics/metrics.service';
import { COORDINATOR_CONFIG, LOGGER, TLS_MATERIAL } from '../config/tokens';
import { LocalExpertDirectory } from '../workers/expert-directory';
import type { ForgetJobRequest } from '../contract/forget-request';
import type { ExpertCheckpoint } from '../workers/expert-session';
import { WorkersService } from '../workers/workers.service';
import { EngineThread, type HostHandlers } from './engine-host';
import type { EngineRole, EvaluateOrder, JobEnd, JobOrder, PredictOrder } from './engine-protocol';

/** Where a running job's reports go on the main thread. */
export interface JobReporter {
  progress(progress: JobProgress): void;
  log(level: 'info' | 'warn' | 'error', text: string): void;
  saveCheckpoints(checkpoints: Record<string, ExpertCheckpoint>): void;
  retraining(experts: readonly number[]): void;
}

/** A serving call's cancellation: grpc-js emits `cancelled` on client cancel and deadline. */
export interface CancellableCall {
  /** Already cancelled (before a listener was added). */
  readonly cancelled?: boolean;
  on(event: 'cancelled', listener: () => void): unknown;
  removeListener(event: 'cancelled', listener: () => void): unknown;
}

/**
 * The coordinator's TensorFlow.js work, off its main thread: one engine thread runs jobs
 * (training, forgetting, sisa replays), another serves Predict and Evaluate. Both reach the
 * workers through this thread's registry and placement.
 */
@Injectable()
export class EngineService implements OnApplicationShutdown {
  private readonly threads: Record<EngineRole, EngineThread>;
  private readonly reporters = new Map<string, JobReporter>();
  private nextCallId = 1;
  /** Set at shutdown: what fails from now on fails because the threads are being stopped. */
  stopping = false;

  constructor(
    @Inject(COORDINATOR_CONFIG) config: CoordinatorConfig,
    @Inject(LOGGER) log: Logger,
    @Inject(TLS_MATERIAL) tls: TlsMaterial | null,
    @Inject(WorkersService) workers: WorkersService,
    @Inject(MetricsService) metrics: MetricsService,
  ) {
    const handlers = (role: EngineRole): HostHandlers => {
      const directory = new LocalExpertDirectory(
        workers.placement,
        workers.registry,
        role === 'jobs' ? 'job' : 'serving',
      );
      return {
        setExpertCount: (experts) => directory.setExpertCount(experts),
        locate: async ({ expert, waitMs }) => {
          const worker = await directory.locate(expert, waitMs);
          return worker ? { id: worker.id, address: worker.address } : null;
        },
        isLost: (workerId) => directory.isLost(workerId),
        markLost: ({ workerId, reason }) => directory.markLost(workerId, reason),
        liveCount: () => directory.liveCount(),
        jobProgress: ({ jobId, progress }) => this.reporters.get(jobId)?.progress(progress),
        jobLog: ({ jobId, level, text }) => this.reporters.get(jobId)?.log(level, text),
        jobRetraining: ({ jobId, experts }) => this.reporters.get(jobId)?.retraining(experts),
        saveCheckpoints: ({ jobId, checkpoints }) =>
          this.reporters.get(jobId)?.saveCheckpoints(checkpoints),
        recordStep: (timing) => metrics.recordStep(timing),
        recordWorkerRpc: ({ method, seconds }) => metrics.recordWorkerRpc(method, seconds),
      };
    };
    const thread = (role: EngineRole): EngineThread =>
      new EngineThread(
        {
          role,
          store: config.store,
          logLevel: config.logLevel,
          tls,
          workerDeadlineMs: config.workerDeadlineMs,
          checkpointEverySteps: config.checkpointEverySteps,
        },
        handlers(role),
        log.child({ component: 'engine' }),
      );
    this.threads = { jobs: thread('jobs'), serving: thread('serving') };
  }

  /** Runs a job in the jobs thread; its progress, logs and checkpoints go to `reporter`. */
  async runJob(order: JobOrder, reporter: JobReporter): Promise<JobEnd[]> {
    this.reporters.set(order.jobId, reporter);
    try {
      return await (await this.threads.jobs.bridge()).call('runJob', order);
    } finally {
      this.reporters.delete(order.jobId);
    }
  }

  /** Asks a running job to stop; it ends with an error once it has. */
  abortJob(jobId: string): void {
    void this.threads.jobs
      .bridge()
      .then((bridge) => bridge.notify('abortJob', jobId))
      .catch(() => undefined);
  }

  predict(order: Omit<PredictOrder, 'callId'>, call: CancellableCall): Promise<PredictResponse> {
    return this.call('serving', call, (callId, bridge) =>
      bridge.call('predict', { ...order, callId }),
    );
  }

  evaluate(order: Omit<EvaluateOrder, 'callId'>, call: CancellableCall): Promise<EvaluateResponse> {
    return this.call('serving', call, (callId, bridge) =>
      bridge.call('evaluate', { ...order, callId }),
    );
  }

  /**
   * A forget request's plan and cost (a dry run). In the jobs thread, which has the training
   * data open, beside a running job: Predict and Evaluate are not held up by a router pass.
   */
  preview(
    request: ForgetJobRequest,
    call: CancellableCall,
  ): Promise<ForgetPreview | SampleForgetPreview> {
    return this.call('jobs', call, (callId, bridge) => bridge.call('preview', { request, callId }));
  }

  /** Trainable parameters of one expert (a model is built to count them: in the serving thread). */
  async expertParameters(config: MoEConfig): Promise<number> {
    return (await this.threads.serving.bridge()).call('expertParameters', config);
  }

  /** A call into an engine thread that stops there when the client cancels or its deadline passes. */
  private async call<T>(
    role: EngineRole,
    call: CancellableCall,
    send: (callId: number, bridge: Awaited<ReturnType<EngineThread['bridge']>>) => Promise<T>,
  ): Promise<T> {
    const bridge = await this.threads[role].bridge();
    // A client that went while the thread was starting is not worth starting the work for.
    if (call.cancelled) throw cancelled('the client cancelled the call');
    const callId = this.nextCallId++;
    const cancel = (): void => bridge.notify('cancel', callId);
    call.on('cancelled', cancel);
    try {
      return await send(callId, bridge);
    } finally {
      call.removeListener('cancelled', cancel);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    await Promise.all([this.threads.jobs.stop(), this.threads.serving.stop()]);
  }
}
