import { type MetricsEndpoint, serveMetrics } from '@lethe/rpc';
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Seconds buckets from 1 ms to 1 min: one expert's Forward or Backward on a CPU or a GPU. */
const SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60,
];

/** What the gauges read when scraped. */
export interface WorkerMetricSources {
  experts: () => number;
  inflightCalls: () => number;
}

/**
 * The worker's Prometheus metrics (prom-client, its own Registry): Forward and Backward compute
 * time, experts held, calls in flight, and the default process metrics.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly forwardSeconds: Histogram;
  readonly backwardSeconds: Histogram;

  constructor(sources: WorkerMetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.forwardSeconds = new Histogram({
      name: 'lethe_worker_forward_seconds',
      help: 'Compute time of a Forward call (one expert, its routed samples).',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.backwardSeconds = new Histogram({
      name: 'lethe_worker_backward_seconds',
      help: 'Compute time of a Backward call (one expert: backpropagation and optimizer step).',
      buckets: SECONDS_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'lethe_worker_experts',
      help: 'Experts this worker holds.',
      registers,
      collect() {
        this.set(sources.experts());
      },
    });
    new Gauge({
      name: 'lethe_worker_inflight_calls',
      help: 'Worker RPCs being served.',
      registers,
      collect() {
        this.set(sources.inflightCalls());
      },
    });
  }
}

/** An HTTP server for GET /metrics (anything else is 404); `close` stops it. */
/** The worker's scrape endpoint (libs/rpc's serveMetrics). */
export type MetricsServer = MetricsEndpoint;
export { serveMetrics };
