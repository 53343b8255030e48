import { closeSync, readFileSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { type EngineInfo, initEngine } from '@lethe/engine';
import {
  type Device,
  DeviceKind,
  HEALTH_DESCRIPTOR_SET,
  LETHE_DESCRIPTOR_SET,
  REFLECTION_DESCRIPTOR_SET,
  WorkerService,
} from '@lethe/proto';
import {
  type RunningServer,
  startGrpcServer,
  tlsChannelCredentials,
  tlsServerCredentials,
} from '@lethe/rpc';
import { type ObjectStore, openObjectStore } from '@lethe/store';
import { redactStoreUrl, type WorkerConfig, workerTls } from './config';
import { ExpertHost } from './expert-host';
import { HostThread, inProcessHost, threadedHosts, type WorkerHost } from './host-thread';
import type { Logger } from './logger';
import { type MetricsServer, serveMetrics, WorkerMetrics } from './metrics';
import { Registration } from './registry-client';
import { CallTracker, createWorkerService } from './worker-service';

export const WORKER_SERVICE_NAME = 'lethe.v1.Worker';

/** A running worker: its server, what it holds, and its registration with the coordinator. */
export interface RunningWorker {
  /** host:port the worker is reached at (the advertised address). */
  address: string;
  server: RunningServer;
  /** The training copy of the experts (`serving`: the copy Predict and Evaluate use). */
  host: WorkerHost;
  serving: WorkerHost;
  engine: EngineInfo;
  /** Undefined without a coordinator. */
  registration: Registration | undefined;
  metrics: WorkerMetrics;
  /** host:port of GET /metrics; undefined when disabled (metricsPort 0). */
  metricsAddress: string | undefined;
  /**
   * Graceful stop: stops heartbeats, stops accepting calls and lets in-flight ones finish (up
   * to the grace period), deregisters, frees every tensor. Idempotent.
   */
  stop(): Promise<void>;
}

export interface StartWorkerOptions {
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** An already opened store (tests); otherwise config.store is opened. */
  store?: ObjectStore;
  /** Called when the worker cannot go on (the coordinator rejected its registration). */
  onFatal?: (error: Error) => void;
}

/** The worker's version, from its package.json. */
export function workerVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Starts the engine, the store, the Worker gRPC server and, with a coordinator, registration. */
export async function startWorker(
  config: WorkerConfig,
  options: StartWorkerOptions,
): Promise<RunningWorker> {
  const { logger } = options;
  const env = options.env ?? process.env;
  let store = options.store;
  if (!store && config.store !== undefined) {
    store = await openObjectStore(config.store, env);
    logger.info({ store: redactStoreUrl(config.store) }, 'object store opened');
  }
  // Mutual TLS: callers (the coordinator) need a client certificate from the cluster CA, and
  // the same certificate is this worker's client certificate for the coordinator's Registry.
  const tls = workerTls(config);
  // Each copy of the experts computes in a thread of its own (host-thread.ts): a training step
  // holds up neither a Predict on the serving copy nor this thread's gRPC, health checks and
  // heartbeats. A store given as an object (tests) cannot cross to a thread: then both copies
  // are hosts on this thread.
  let engine: EngineInfo;
  let host: WorkerHost;
  let serving: WorkerHost;
  if (options.store) {
    engine = await initEngine({ log: (message, fields) => logger.info(fields, message) });
    const training = new ExpertHost({ maxExperts: config.maxExperts, store: options.store });
    host = inProcessHost(training);
    serving = inProcessHost(
      new ExpertHost({
        maxExperts: config.maxExperts,
        store: options.store,
        shareDatasetsWith: training,
      }),
    );
  } else {
    const data = {
      maxExperts: config.maxExperts,
      ...(config.store !== undefined ? { storeUrl: config.store } : {}),
    };
    const training = new HostThread({ ...data, role: 'training' }, logger, env);
    const servingThread = new HostThread({ ...data, role: 'serving' }, logger, env);
    engine = await training.start();
    ({ training: host, serving } = threadedHosts(training, servingThread));
  }
  const tracker = new CallTracker();
  const metrics = new WorkerMetrics({
    experts: () => host.load().expertIds.length,
    inflightCalls: () => tracker.inflight,
  });
  const server = await startGrpcServer({
    address: `${config.host}:${config.port}`,
    services: [
      {
        definition: WorkerService,
        implementation: createWorkerService({ training: host, serving }, tracker, logger, metrics),
      },
    ],
    healthServices: [WORKER_SERVICE_NAME],
    reflection: [LETHE_DESCRIPTOR_SET, HEALTH_DESCRIPTOR_SET, REFLECTION_DESCRIPTOR_SET],
    log: logger,
    ...(tls ? { credentials: tlsServerCredentials(tls, 'require') } : {}),
  });
  if (!tls) {
    logger.warn(
      { listen: server.address },
      'INSECURE: no TLS (--tls-cert, --tls-key, --tls-ca): the Worker service is plaintext and open to any process that reaches its port',
    );
  }
  const address = config.advertise ?? server.address;
  let metricsServer: MetricsServer | undefined;
  if (config.metricsPort !== 0) {
    try {
      metricsServer = await serveMetrics(metrics.registry, config.host, config.metricsPort);
    } catch (error) {
      await server.shutdown(0);
      throw error;
    }
    logger.info({ address: metricsServer.address }, 'metrics listening');
  }

  let registration: Registration | undefined;
  if (config.coordinator !== undefined) {
    registration = new Registration({
      coordinator: config.coordinator,
      address,
      ...(config.name !== undefined ? { name: config.name } : {}),
      version: workerVersion(),
      device: describeDevice(engine),
      maxExperts: config.maxExperts,
      load: () => ({ ...host.load(), inflightCalls: tracker.inflight }),
      log: logger,
      ...(options.onFatal ? { onFatal: options.onFatal } : {}),
      ...(tls ? { credentials: tlsChannelCredentials(tls) } : {}),
    });
  }

  logger.info(
    {
      address,
      listen: server.address,
      workerId: null,
      engine: engine.engine,
      backend: engine.backend,
      coordinator: config.coordinator ?? null,
      maxExperts: config.maxExperts,
      tls: tls !== undefined,
    },
    'worker listening',
  );
  signalReady(env, address, logger);
  // Registration retries in the background until the coordinator answers.
  void registration?.start();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await registration?.stop();
      await server.shutdown(config.graceMs);
      await registration?.deregister();
      await metricsServer?.close();
      await Promise.all([serving.dispose(), host.dispose()]);
      logger.info({ address }, 'worker stopped');
    })();
    return stopping;
  };

  return {
    address,
    server,
    host,
    serving,
    engine,
    registration,
    metrics,
    metricsAddress: metricsServer?.address,
    stop,
  };
}

/** With LETHE_READY_FD set, writes one JSON line {address} to that descriptor and closes it. */
function signalReady(env: NodeJS.ProcessEnv, address: string, logger: Logger): void {
  const fd = env['LETHE_READY_FD'];
  if (fd === undefined || fd === '') return;
  try {
    const n = Number(fd);
    writeSync(n, `${JSON.stringify({ address })}\n`);
    closeSync(n);
  } catch (error) {
    logger.warn({ fd, err: error }, 'cannot write to LETHE_READY_FD');
  }
}

function describeDevice(engine: EngineInfo): Device {
  const cpu = cpus();
  const gpu = engine.engine === 'gpu';
  return {
    kind: gpu ? DeviceKind.DEVICE_KIND_GPU : DeviceKind.DEVICE_KIND_CPU,
    engine: engine.backend,
    name: gpu ? 'CUDA GPU (tfjs-node-gpu)' : `${cpu.length} x ${cpu[0]?.model.trim() ?? 'CPU'}`,
    memoryBytes: gpu ? 0 : totalmem(),
  };
}
