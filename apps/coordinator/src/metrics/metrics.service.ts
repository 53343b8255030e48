import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RoutingHealth } from '@lethe/metrics';
import { type MetricsEndpoint, serveMetrics } from '@lethe/rpc';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config/coordinator-config';
import type { StepTiming } from '../contract/job-context';
import type { JobKindName, JobStateName } from '../contract/job-record';
import { COORDINATOR_CONFIG, LOGGER } from '../config/tokens';

/** A registered worker's state, as the registry names it (metrics sits below workers). */
export type WorkerHealth = 'alive' | 'suspect' | 'lost';
const WORKER_STATES: readonly WorkerHealth[] = ['alive', 'suspect', 'lost'];

/** Seconds buckets from 5 ms to 2 min: a step or worker call on a CPU or a GPU. */
const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * Seconds buckets from 1 s to 4 h: a forget request waits in the queue behind other jobs, and a
 * retrain baseline or a sisa replay on CIFAR takes hours on a CPU.
 */
const FORGET_SECONDS_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];

/**
 * The coordinator's Prometheus metrics (prom-client, its own Registry) and, with
 * `metricsPort` set, the HTTP server that exposes them at GET /metrics on the gRPC host.
 * Gauges read their values when scraped, from the sources the other providers hand in.
 */
@Injectable()
export class MetricsService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly registry = new Registry();
  readonly trainingSteps: Counter;
  readonly trainingImages: Counter;
  readonly stepSeconds: Histogram;
  readonly stepRpcSeconds: Histogram;
  readonly jobs: Counter<'kind' | 'state'>;
  readonly workerRpcSeconds: Histogram<'method'>;
  readonly forgetRequestSeconds: Histogram<'method' | 'outcome'>;
  private readonly collateral: Gauge;
  private readonly utilisation: Gauge<'expert'>;
  private readonly deadExperts: Gauge;
  private server: MetricsEndpoint | undefined;
  private workerStates: () => Iterable<WorkerHealth> = () => [];
  private forgetQueue: () => number = () => 0;

  constructor(
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly log: Logger,
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.trainingSteps = new Counter({
      name: 'lethe_training_steps_total',
      help: 'Expert-parallel training steps (training jobs and forget retraining).',
      registers,
    });
    this.trainingImages = new Counter({
      name: 'lethe_training_images_total',
      help: 'Images trained on in expert-parallel steps; images/s is its rate.',
      registers,
    });
    this.stepSeconds = new Histogram({
      name: 'lethe_step_seconds',
      help: 'Wall time of an expert-parallel training step.',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.stepRpcSeconds = new Histogram({
      name: 'lethe_step_rpc_seconds',
      help: 'Part of a step spent in RPC: waiting on workers beyond their reported compute.',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.jobs = new Counter({
      name: 'lethe_jobs_total',
      help: 'Jobs that reached a terminal state, by kind (training, forget) and state.',
      labelNames: ['kind', 'state'],
      registers,
    });
    this.workerRpcSeconds = new Histogram({
      name: 'lethe_worker_rpc_seconds',
      help: 'Duration of calls from the coordinator to workers, by method.',
      labelNames: ['method'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.forgetRequestSeconds = new Histogram({
      name: 'lethe_forget_request_seconds',
      help: "Forget requests, from SubmitForget's acceptance to the job's end (a succeeded one has published its receipt), by method (targeted, a baseline, sisa-replay, samples: a joint model's samples or subjects) and outcome (succeeded, failed, cancelled).",
      labelNames: ['method', 'outcome'],
      buckets: FORGET_SECONDS_BUCKETS,
      registers,
    });
    const forgetQueue = (): number => this.forgetQueue();
    new Gauge({
      name: 'lethe_forget_queue_length',
      help: 'Forget jobs queued or running.',
      registers,
      collect() {
        this.set(safely(forgetQueue, 0));
      },
    });
    this.collateral = new Gauge({
      name: 'lethe_routing_collateral_ratio',
      help: "Published model, mean over classes: share of the other classes' test routing carried by the experts a forget of the class would retrain.",
      registers,
    });
    this.utilisation = new Gauge({
      name: 'lethe_expert_utilisation_ratio',
      help: 'Published model: each expert’s share of test routing slots over the fair share (1 = fair).',
      labelNames: ['expert'],
      registers,
    });
    this.deadExperts = new Gauge({
      name: 'lethe_dead_experts',
      help: 'Published model: experts with less than 10% of their fair share of test routing.',
      registers,
    });
    this.setRoutingHealth(undefined);
    const workerStates = (): Iterable<WorkerHealth> => this.workerStates();
    new Gauge({
      name: 'lethe_workers',
      help: 'Registered workers by state (alive, suspect, lost).',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map(WORKER_STATES.map((s) => [s, 0]));
        for (const state of safely(workerStates, [])) {
          counts.set(state, (counts.get(state) ?? 0) + 1);
        }
        for (const [state, count] of counts) this.set({ state }, count);
      },
    });
  }

  /** Where `lethe_workers` reads the workers' states from. */
  watchWorkers(states: () => Iterable<WorkerHealth>): void {
    this.workerStates = states;
  }

  /** Where `lethe_forget_queue_length` reads the queued and running forget jobs from. */
  watchForgetQueue(length: () => number): void {
    this.forgetQueue = length;
  }

  /**
   * The published model's routing health (when it is published, and at start). Undefined, for
   * a model that has none recorded: NaN ("unknown", where 0 would read as healthy) and no
   * per-expert series.
   */
  setRoutingHealth(health: RoutingHealth | undefined): void {
    this.utilisation.reset();
    if (!health) {
      this.collateral.set(Number.NaN);
      this.deadExperts.set(Number.NaN);
      return;
    }
    this.collateral.set(health.meanCollateral / 100);
    health.utilisation.forEach((u, e) => this.utilisation.set({ expert: String(e) }, u));
    this.deadExperts.set(health.deadExperts.length);
  }

  /** One expert-parallel step: the executor's onTiming. */
  recordStep(timing: StepTiming): void {
    this.trainingSteps.inc();
    this.trainingImages.inc(timing.images);
    this.stepSeconds.observe(timing.stepSeconds);
    this.stepRpcSeconds.observe(timing.rpcSeconds);
  }

  /** One call to a worker (ExpertSession's onRpc). */
  recordWorkerRpc(method: string, seconds: number): void {
    this.workerRpcSeconds.observe({ method }, seconds);
  }

  jobFinished(kind: JobKindName, state: JobStateName): void {
    this.jobs.inc({ kind, state });
  }

  /**
   * A forget request that ended. Measured from its acceptance, not its start, because the wait in
   * the queue (and across a coordinator restart, which requeues it) is latency its requester sees.
   */
  forgetFinished(method: string, outcome: JobStateName, seconds: number): void {
    this.forgetRequestSeconds.observe({ method, outcome }, Math.max(0, seconds));
  }

  /** host:port of the metrics endpoint; undefined when disabled (metricsPort 0). */
  get address(): string | undefined {
    return this.server?.address;
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.metricsPort === 0) return;
    this.server = await serveMetrics(this.registry, this.config.host, this.config.metricsPort);
    this.log.info({ address: this.address }, 'metrics listening');
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.close();
  }
}
/** A scrape never fails because a source has gone (e.g. the job database closed at shutdown). */
function safely<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    return fallback;
  }
}
