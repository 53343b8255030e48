import { Worker } from 'node:worker_threads';
import { type EngineInfo, threadEntry } from '@lethe/engine';
import {
  type BackwardInput,
  type BackwardResult,
  type CheckpointResult,
  type DatasetInfo,
  type DatasetSource,
  type ExpertAssignment,
  type ExpertHost,
  type ForwardInput,
  type HeldDataset,
  HostError,
  type HostErrorCode,
  type HostLoad,
  type LoadedExpert,
  type Logits,
  type ModelSpec,
  type ReleaseInput,
} from './expert-host';
import type { Logger } from './logger';
import type { RawImage } from './tensors';

export type Released = { releasedExpertIds: number[]; releasedDatasetKeys: string[] };

/**
 * An ExpertHost as the Worker service uses it: asynchronous, so that it may compute in a thread
 * of its own (HostThread) or, in tests given a store object, on the main thread
 * (`inProcessHost`). `load()` answers at once (a thread's: as of its last answer).
 */
export interface WorkerHost {
  assignExperts(
    model: ModelSpec,
    assignments: readonly ExpertAssignment[],
    replaceAll: boolean,
  ): Promise<LoadedExpert[]>;
  loadDataset(key: string, source: DatasetSource): Promise<DatasetInfo>;
  forward(input: ForwardInput): Promise<Logits>;
  backward(input: BackwardInput): Promise<BackwardResult>;
  predict(expertId: number, images: readonly RawImage[]): Promise<Logits>;
  checkpoint(expertId: number): Promise<CheckpointResult>;
  release(input: ReleaseInput): Promise<Released>;
  load(): HostLoad;
  dispose(): Promise<void>;
}

/** A host on the main thread (the serving copy shares its datasets through the constructor). */
export function inProcessHost(host: ExpertHost): WorkerHost {
  return {
    assignExperts: (model, assignments, replaceAll) =>
      host.assignExperts(model, assignments, replaceAll),
    loadDataset: (key, source) => host.loadDataset(key, source),
    forward: async (input) => host.forward(input),
    backward: async (input) => host.backward(input),
    predict: async (expertId, images) => host.predict(expertId, images),
    checkpoint: (expertId) => host.checkpoint(expertId),
    release: async (input) => host.release(input),
    load: () => host.load(),
    dispose: async () => host.dispose(),
  };
}

/** What a host thread starts with. */
export interface HostThreadData {
  role: 'training' | 'serving';
  storeUrl?: string;
  maxExperts: number;
}

type Arg<K extends keyof ExpertHost> = ExpertHost[K] extends (...args: infer A) => unknown
  ? A
  : never;

/** A call to a host thread: one ExpertHost method and its arguments. */
export type HostRequest = { id: number } & (
  | { method: 'assignExperts'; args: Arg<'assignExperts'> }
  | { method: 'loadDataset'; args: Arg<'loadDataset'> }
  | { method: 'forward'; args: Arg<'forward'> }
  | { method: 'backward'; args: Arg<'backward'> }
  | { method: 'predict'; args: Arg<'predict'> }
  | { method: 'checkpoint'; args: Arg<'checkpoint'> }
  | { method: 'release'; args: Arg<'release'> }
  | { method: 'sharedDataset'; args: Arg<'sharedDataset'> }
  | { method: 'adoptDataset'; args: Arg<'adoptDataset'> }
);

export type HostReply =
  | { kind: 'ready'; engine: EngineInfo; load: HostLoad }
  | { kind: 'failed'; message: string }
  | { kind: 'log'; message: string; fields: Record<string, unknown> }
  | { kind: 'result'; id: number; value: unknown; load: HostLoad }
  | { kind: 'error'; id: number; message: string; code?: HostErrorCode; load: HostLoad };

type Call = HostRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never;

const EMPTY_LOAD: HostLoad = { expertIds: [], memoryUsedBytes: 0, busyMs: 0, tensors: 0 };

/**
 * An ExpertHost in a worker thread with its own TensorFlow.js engine. Forward and Backward are
 * synchronous where they compute; on the main thread they held up every other call for the
 * whole step — a Predict on the serving copy, a health check — so each copy computes in its own
 * thread and the main thread only speaks gRPC and relays. Started by `start()` or the first
 * call; a thread that dies fails its calls and starts again, empty, on the next one (the
 * coordinator reloads experts it finds missing).
 */
export class HostThread implements WorkerHost {
  private started: Promise<{ worker: Worker; engine: EngineInfo }> | undefined;
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  private lastLoad: HostLoad = EMPTY_LOAD;
  private disposed = false;

  constructor(
    private readonly data: HostThreadData,
    private readonly log: Logger,
    /** The thread's environment (the store's credentials come from it). */
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** Starts the thread (if not yet) and resolves with the engine it chose. */
  async start(): Promise<EngineInfo> {
    return (await this.thread()).engine;
  }

  assignExperts(
    model: ModelSpec,
    assignments: readonly ExpertAssignment[],
    replaceAll: boolean,
  ): Promise<LoadedExpert[]> {
    return this.call({
      method: 'assignExperts',
      args: [model, assignments, replaceAll],
    }) as Promise<LoadedExpert[]>;
  }

  loadDataset(key: string, source: DatasetSource): Promise<DatasetInfo> {
    return this.call({ method: 'loadDataset', args: [key, source] }) as Promise<DatasetInfo>;
  }

  forward(input: ForwardInput): Promise<Logits> {
    return this.call({ method: 'forward', args: [input] }) as Promise<Logits>;
  }

  backward(input: BackwardInput): Promise<BackwardResult> {
    // Copied, not transferred: the gradient may be a view into a buffer gRPC pools.
    return this.call({ method: 'backward', args: [input] }) as Promise<BackwardResult>;
  }

  predict(expertId: number, images: readonly RawImage[]): Promise<Logits> {
    return this.call({ method: 'predict', args: [expertId, images] }) as Promise<Logits>;
  }

  checkpoint(expertId: number): Promise<CheckpointResult> {
    return this.call({ method: 'checkpoint', args: [expertId] }) as Promise<CheckpointResult>;
  }

  release(input: ReleaseInput): Promise<Released> {
    return this.call({ method: 'release', args: [input] }) as Promise<Released>;
  }

  /** The thread's dataset under `key`, its arrays in shared memory (no copy crosses). */
  sharedDataset(key: string): Promise<HeldDataset | undefined> {
    return this.call({ method: 'sharedDataset', args: [key] }) as Promise<HeldDataset | undefined>;
  }

  /** Gives the thread a dataset held elsewhere (shared memory: the same bytes). */
  async adoptDataset(key: string, held: HeldDataset): Promise<void> {
    await this.call({ method: 'adoptDataset', args: [key, held] });
  }

  load(): HostLoad {
    return this.lastLoad;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.started = undefined;
    await worker?.terminate();
  }

  private async call(call: Call): Promise<unknown> {
    const { worker } = await this.thread();
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...call, id });
    });
  }

  private thread(): Promise<{ worker: Worker; engine: EngineInfo }> {
    if (this.disposed)
      return Promise.reject(new HostError('UNAVAILABLE', 'the worker is stopping'));
    this.started ??= this.spawn();
    return this.started;
  }

  private spawn(): Promise<{ worker: Worker; engine: EngineInfo }> {
    const { file, execArgv } = threadEntry(__dirname, 'host-thread-main');
    const worker = new Worker(file, { workerData: this.data, execArgv, env: this.env });
    this.worker = worker;
    const role = this.data.role;
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (reply: HostReply) => {
        switch (reply.kind) {
          case 'ready':
            ready = true;
            this.lastLoad = reply.load;
            this.log.info({ thread: role, engine: reply.engine.engine }, 'host thread ready');
            resolve({ worker, engine: reply.engine });
            return;
          case 'failed':
            reject(new Error(`the ${role} thread did not start: ${reply.message}`));
            void worker.terminate();
            return;
          case 'log':
            this.log.info({ thread: role, ...reply.fields }, reply.message);
            return;
          default: {
            this.lastLoad = reply.load;
            const waiting = this.pending.get(reply.id);
            if (!waiting) return;
            this.pending.delete(reply.id);
            if (reply.kind === 'result') waiting.resolve(reply.value);
            else {
              waiting.reject(
                reply.code ? new HostError(reply.code, reply.message) : new Error(reply.message),
              );
            }
          }
        }
      });
      const gone = (why: string): void => {
        if (this.worker === worker) {
          this.worker = undefined;
          this.started = undefined;
          this.lastLoad = EMPTY_LOAD;
        }
        if (!ready) reject(new Error(`the ${role} thread did not start: ${why}`));
        const error = new HostError('UNAVAILABLE', `the ${role} thread stopped: ${why}`);
        for (const { reject: fail } of this.pending.values()) fail(error);
        this.pending.clear();
        if (!this.disposed) this.log.error({ thread: role, why }, 'host thread stopped');
      };
      worker.on('error', (error) => gone(error.message));
      worker.on('exit', (code) => gone(`exit code ${code}`));
    });
  }
}

/**
 * The training and serving copies, each in its thread, sharing datasets: a dataset is loaded by
 * the training thread and handed to the serving thread in shared memory (one copy per worker,
 * as before) when a serving Forward first names it. Releasing a dataset from either copy
 * releases it from both, as when they shared one map.
 */
export function threadedHosts(
  training: HostThread,
  serving: HostThread,
): { training: WorkerHost; serving: WorkerHost } {
  const datasets = new Map<string, HeldDataset>();
  const sent = new Map<string, HeldDataset>();
  const forgetDatasets = (keys: readonly string[]): void => {
    for (const key of keys) datasets.delete(key);
  };
  return {
    training: {
      assignExperts: (model, assignments, replaceAll) =>
        training.assignExperts(model, assignments, replaceAll),
      async loadDataset(key, source) {
        const info = await training.loadDataset(key, source);
        const held = await training.sharedDataset(key);
        if (held) datasets.set(key, held);
        return info;
      },
      forward: (input) => training.forward(input),
      backward: (input) => training.backward(input),
      predict: (expertId, images) => training.predict(expertId, images),
      checkpoint: (expertId) => training.checkpoint(expertId),
      async release(input) {
        const released = await training.release(input);
        forgetDatasets(released.releasedDatasetKeys);
        return released;
      },
      load: () => training.load(),
      dispose: () => training.dispose(),
    },
    serving: {
      assignExperts: (model, assignments, replaceAll) =>
        serving.assignExperts(model, assignments, replaceAll),
      loadDataset: (key, source) => training.loadDataset(key, source),
      async forward(input) {
        const key = input.datasetKey;
        const held = datasets.get(key);
        if (held && sent.get(key) !== held) {
          sent.set(key, held);
          await serving.adoptDataset(key, held);
        } else if (!held && sent.delete(key)) {
          await serving.release({ expertIds: [], datasetKeys: [key], all: false });
        }
        return serving.forward(input);
      },
      backward: (input) => serving.backward(input),
      predict: (expertId, images) => serving.predict(expertId, images),
      checkpoint: (expertId) => serving.checkpoint(expertId),
      async release(input) {
        const released = await serving.release(input);
        const keys = input.all ? [...datasets.keys()] : input.datasetKeys;
        for (const key of input.all ? [...sent.keys()] : keys) sent.delete(key);
        const shared =
          keys.length > 0
            ? (await training.release({ expertIds: [], datasetKeys: keys, all: false }))
                .releasedDatasetKeys
            : [];
        forgetDatasets(shared);
        return {
          releasedExpertIds: released.releasedExpertIds,
          releasedDatasetKeys: [...new Set([...released.releasedDatasetKeys, ...shared])].sort(),
        };
      },
      load: () => serving.load(),
      dispose: () => serving.dispose(),
    },
  };
}
