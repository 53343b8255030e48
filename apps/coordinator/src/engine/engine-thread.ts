import { parentPort, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { initEngine } from '@lethe/engine';
import { MoEModel } from '@lethe/model';
import { WorkerClient } from '@lethe/proto';
import { tlsChannelCredentials } from '@lethe/rpc';
import { ManifestStore, openObjectStore } from '@lethe/store';
import pino from 'pino';
import { previewForget, runForgetJob, runSisaForgetBatch } from '../runners/forget-runner';
import type { JobContext } from '../contract/job-context';
import { ModelState } from '../model/current-model';
import { ServingEngine } from '../runners/serving-engine';
import { runTrainingJob } from '../runners/training-runner';
import type { ExpertDirectory, WorkerHandle } from '../workers/expert-directory';
import { Bridge } from './bridge';
import type { EngineApi, EngineThreadData, HostApi, JobEnd, JobOrder } from './engine-protocol';

/**
 * An engine thread of the coordinator: its own TensorFlow.js engine, object store and channels
 * to the workers, so that router steps, measurement, teacher passes and evaluation never hold
 * up the main thread's gRPC serving, health checks and worker heartbeats. Started by
 * EngineThread (engine-host.ts) in the `jobs` or the `serving` role.
 */

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** The registry and placement of the main thread, asked over the bridge. */
class BridgedDirectory implements ExpertDirectory {
  private readonly clients = new Map<string, WorkerClient>();

  constructor(
    private readonly host: Bridge<EngineApi, HostApi>,
    private readonly credentials: grpc.ChannelCredentials,
  ) {}

  setExpertCount(experts: number): Promise<void> {
    return this.host.call('setExpertCount', experts);
  }

  async locate(expert: number, waitMs: number): Promise<WorkerHandle | undefined> {
    const worker = await this.host.call('locate', { expert, waitMs });
    if (!worker) return undefined;
    // One channel per worker id: a restarted worker at the same address gets a new id.
    let client = this.clients.get(worker.id);
    if (!client) {
      client = new WorkerClient(worker.address, this.credentials, {
        'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      });
      this.clients.set(worker.id, client);
    }
    return { ...worker, client };
  }

  isLost(workerId: string): Promise<boolean> {
    return this.host.call('isLost', workerId);
  }

  async markLost(workerId: string, reason: string): Promise<void> {
    await this.host.call('markLost', { workerId, reason });
    // Calls in flight fail by themselves; close once they have had their chance.
    const client = this.clients.get(workerId);
    if (client) setTimeout(() => client.close(), 60_000).unref();
  }

  liveCount(): Promise<number> {
    return this.host.call('liveCount', null);
  }
}

async function main(): Promise<void> {
  const data = workerData as EngineThreadData;
  const port = parentPort!;
  const log = pino({ level: data.logLevel, base: { service: 'coordinator', thread: data.role } });
  const engine = await initEngine({ log: (line) => log.debug(line) });
  const store = await openObjectStore(data.store);
  const models = new ModelState(store);
  const aborts = new Map<string, AbortController>();
  const cancels = new Map<number, AbortController>();
  const credentials = data.tls
    ? tlsChannelCredentials({
        cert: Buffer.from(data.tls.cert),
        key: Buffer.from(data.tls.key),
        ca: Buffer.from(data.tls.ca),
      })
    : grpc.credentials.createInsecure();
  let serving: ServingEngine | undefined;
  const metrics = {
    recordStep: (timing: Parameters<HostApi['recordStep']>[0]) =>
      bridge.notify('recordStep', timing),
    recordWorkerRpc: (method: string, seconds: number) =>
      bridge.notify('recordWorkerRpc', { method, seconds }),
  };

  const runJob = async (order: JobOrder): Promise<JobEnd[]> => {
    const abort = new AbortController();
    aborts.set(order.jobId, abort);
    const context: JobContext = {
      jobId: order.jobId,
      seq: order.seq,
      ...(order.kind === 'training'
        ? { requestId: order.requestId ?? '', restarted: order.restarted ?? false }
        : {}),
      signal: abort.signal,
      progress: (progress) => bridge.notify('jobProgress', { jobId: order.jobId, progress }),
      log: (level, text) => bridge.notify('jobLog', { jobId: order.jobId, level, text }),
      retraining: (experts) =>
        bridge.notify('jobRetraining', { jobId: order.jobId, experts: [...experts] }),
    };
    const deps = {
      store,
      models,
      directory,
      log: log.child({ jobId: order.jobId }),
      workerDeadlineMs: data.workerDeadlineMs,
      metrics,
    };
    try {
      // Hours of training are wasted if the result cannot be stored: find out first.
      await new ManifestStore(store).checkPublishable().catch((error: unknown) => {
        const why = error instanceof Error ? error.message : String(error);
        throw new Error(`the store cannot publish a new revision, so nothing was run: ${why}`, {
          cause: error,
        });
      });
      switch (order.kind) {
        case 'training': {
          const outcome = await runTrainingJob(
            {
              ...deps,
              checkpointEverySteps: data.checkpointEverySteps,
              saveCheckpoints: (jobId, checkpoints) =>
                bridge.notify('saveCheckpoints', {
                  jobId,
                  checkpoints: Object.fromEntries(Object.entries(checkpoints)),
                }),
            },
            order.request,
            context,
          );
          return [{ manifestRevision: outcome.manifestRevision }];
        }
        case 'forget': {
          const receipt = await runForgetJob(deps, order.request, context);
          return [{ manifestRevision: receipt.manifest.after }];
        }
        case 'sisa-forget': {
          const outcomes = await runSisaForgetBatch(deps, order.requests, context);
          return outcomes.map((outcome) =>
            'receipt' in outcome
              ? { manifestRevision: outcome.receipt.manifest.after }
              : {
                  error: (outcome.error instanceof Error
                    ? outcome.error.message
                    : String(outcome.error)
                  ).split('\n')[0]!,
                },
          );
        }
      }
    } finally {
      aborts.delete(order.jobId);
    }
  };

  const servingEngine = (): ServingEngine =>
    (serving ??= new ServingEngine({
      models,
      store,
      directory,
      log,
      workerDeadlineMs: data.workerDeadlineMs,
      onRpc: metrics.recordWorkerRpc,
    }));
  /** A call's work, stopped when its client goes; long ones (`name`) log start and stop. */
  const cancellable = async <T>(
    callId: number,
    task: (signal: AbortSignal) => Promise<T>,
    name?: string,
  ): Promise<T> => {
    const abort = new AbortController();
    cancels.set(callId, abort);
    if (name) log.info({ callId }, `${name} started`);
    try {
      return await task(abort.signal);
    } catch (error) {
      if (name && abort.signal.aborted) log.info({ callId }, `${name} stopped: its client went`);
      throw error;
    } finally {
      cancels.delete(callId);
    }
  };

  const bridge: Bridge<EngineApi, HostApi> = new Bridge<EngineApi, HostApi>(port, {
    runJob,
    abortJob: (jobId: string) => aborts.get(jobId)?.abort(),
    predict: (order) =>
      cancellable(order.callId, (signal) => servingEngine().predict(order.images, signal)),
    evaluate: (order) =>
      cancellable(order.callId, (signal) => servingEngine().evaluate(order, signal), 'evaluate'),
    preview: (order) =>
      cancellable(
        order.callId,
        (signal) => previewForget(models, store, order.request, signal),
        'forget plan',
      ),
    expertParameters: async (config) => {
      const probe = new MoEModel(config);
      try {
        return probe.countParameters().expert;
      } finally {
        probe.dispose();
      }
    },
    cancel: (callId: number) => cancels.get(callId)?.abort(),
  });
  const directory = new BridgedDirectory(bridge, credentials);
  bridge.notify('ready', { engine: engine.engine });
}

// A failure to start is an unhandled rejection, which ends the thread with an 'error' event: the
// main thread then fails what it had asked for.
void main();
