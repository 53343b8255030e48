import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  type ExpertAssignment,
  type ExpertHost,
  type ForwardInput,
  HostError,
  type HostErrorCode,
  type HeldDataset,
  type LoadedExpert,
  type Logits,
  type ModelSpec,
  type ReleaseInput,
} from './expert-host';
import type { Logger } from './logger';
import type { RawImage } from './tensors';

/**
 * The serving copy of a worker's experts (ExpertCopy SERVING in worker.proto): the published
 * weights that Predict and Evaluate run on while jobs train the training copy.
 */
export interface ServingCopy {
  assignExperts(
    model: ModelSpec,
    assignments: readonly ExpertAssignment[],
    replaceAll: boolean,
  ): Promise<LoadedExpert[]>;
  forward(input: ForwardInput): Promise<Logits>;
  predict(expertId: number, images: readonly RawImage[]): Promise<Logits>;
  release(
    input: ReleaseInput,
  ): Promise<{ releasedExpertIds: number[]; releasedDatasetKeys: string[] }>;
  dispose(): Promise<void>;
}

/** The serving copy as a second host on the main thread (tests that pass a store object). */
export function inProcessServing(host: ExpertHost): ServingCopy {
  return {
    assignExperts: (model, assignments, replaceAll) =>
      host.assignExperts(model, assignments, replaceAll),
    forward: async (input) => host.forward(input),
    predict: async (expertId, images) => host.predict(expertId, images),
    release: async (input) => host.release(input),
    dispose: async () => host.dispose(),
  };
}

/** What the serving thread starts with. */
export interface ServingThreadData {
  storeUrl?: string;
  maxExperts: number;
}

/** A call to the serving thread (one method of its ExpertHost, or a dataset handed over). */
export type ServingRequest = { id: number } & (
  | {
      method: 'assignExperts';
      model: ModelSpec;
      assignments: readonly ExpertAssignment[];
      replaceAll: boolean;
    }
  | { method: 'forward'; input: ForwardInput }
  | { method: 'predict'; expertId: number; images: readonly RawImage[] }
  | { method: 'release'; input: ReleaseInput }
  | { method: 'adoptDataset'; key: string; held: HeldDataset }
  | { method: 'dropDataset'; key: string }
);

export type ServingReply =
  | { kind: 'ready'; engine: string }
  | { kind: 'failed'; message: string }
  | { kind: 'log'; message: string; fields: Record<string, unknown> }
  | { kind: 'result'; id: number; value: unknown }
  | { kind: 'error'; id: number; message: string; code?: HostErrorCode };

type Call = ServingRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never;

/** The thread's entry: the built .js, else the .ts source through tsx (tests, `tsx` runs). */
function threadEntry(): { file: string; execArgv: string[] } {
  const built = join(__dirname, 'serving-thread.js');
  if (existsSync(built)) return { file: built, execArgv: process.execArgv };
  const execArgv: string[] = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const arg = process.execArgv[i]!;
    // tsx's --import hook does not run in worker threads on Node 20; --require tsx/cjs does.
    if (arg === '--import' && process.execArgv[i + 1]?.includes('tsx')) i++;
    else if (!(arg.startsWith('--import=') && arg.includes('tsx'))) execArgv.push(arg);
  }
  if (!execArgv.some((a) => a.includes('@lethe/source'))) {
    execArgv.push('--conditions=@lethe/source');
  }
  execArgv.push('--require', require.resolve('tsx/cjs'));
  return { file: join(__dirname, 'serving-thread.ts'), execArgv };
}

/**
 * The serving copy in a worker thread with its own engine: a worker's training Forward and
 * Backward are synchronous on the main thread, and a Predict queued behind them waited for the
 * whole step. Here it computes beside them (the main thread only relays). Datasets stay loaded
 * once: the training host's arrays move into shared memory and the thread reads the same bytes.
 * Started on the first serving call; a thread that dies fails its calls and is started again
 * on the next one (empty: the coordinator reloads experts it finds missing).
 */
export class ServingThread implements ServingCopy {
  private worker: Worker | undefined;
  private started: Promise<Worker> | undefined;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  /** Dataset keys handed to the thread, with the source they were loaded from. */
  private readonly sent = new Map<string, string>();
  private disposed = false;

  constructor(
    private readonly training: ExpertHost,
    private readonly data: ServingThreadData,
    private readonly log: Logger,
    /** The thread's environment (the store's credentials come from it). */
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  assignExperts(
    model: ModelSpec,
    assignments: readonly ExpertAssignment[],
    replaceAll: boolean,
  ): Promise<LoadedExpert[]> {
    return this.call({ method: 'assignExperts', model, assignments, replaceAll }) as Promise<
      LoadedExpert[]
    >;
  }

  async forward(input: ForwardInput): Promise<Logits> {
    const worker = await this.thread();
    const key = input.datasetKey;
    const held = this.training.sharedDataset(key);
    if (!held && this.sent.has(key)) {
      this.sent.delete(key);
      this.post(worker, { method: 'dropDataset', key });
    } else if (held && this.sent.get(key) !== held.sourceKey) {
      this.sent.set(key, held.sourceKey);
      this.post(worker, { method: 'adoptDataset', key, held });
    }
    return this.call({ method: 'forward', input }) as Promise<Logits>;
  }

  predict(expertId: number, images: readonly RawImage[]): Promise<Logits> {
    return this.call({ method: 'predict', expertId, images }) as Promise<Logits>;
  }

  /** Releases the thread's experts; dataset keys as before, once per worker (both copies). */
  async release(
    input: ReleaseInput,
  ): Promise<{ releasedExpertIds: number[]; releasedDatasetKeys: string[] }> {
    const released = (await this.call({ method: 'release', input })) as {
      releasedExpertIds: number[];
      releasedDatasetKeys: string[];
    };
    const keys = input.all ? this.training.datasetKeys() : input.datasetKeys;
    for (const key of input.all ? [...this.sent.keys()] : keys) this.sent.delete(key);
    const shared =
      keys.length > 0
        ? this.training.release({ expertIds: [], datasetKeys: keys, all: false })
            .releasedDatasetKeys
        : [];
    return {
      releasedExpertIds: released.releasedExpertIds,
      releasedDatasetKeys: [...new Set([...released.releasedDatasetKeys, ...shared])].sort(),
    };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.started = undefined;
    await worker?.terminate();
  }

  private async call(call: Call): Promise<unknown> {
    const worker = await this.thread();
    return new Promise((resolve, reject) => {
      const id = this.post(worker, call);
      this.pending.set(id, { resolve, reject });
    });
  }

  private post(worker: Worker, call: Call): number {
    const id = this.nextId++;
    worker.postMessage({ ...call, id });
    return id;
  }

  private thread(): Promise<Worker> {
    if (this.disposed) return Promise.reject(new Error('the worker is stopping'));
    this.started ??= this.start();
    return this.started;
  }

  private start(): Promise<Worker> {
    const { file, execArgv } = threadEntry();
    const worker = new Worker(file, { workerData: this.data, execArgv, env: this.env });
    this.worker = worker;
    this.sent.clear();
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (reply: ServingReply) => {
        switch (reply.kind) {
          case 'ready':
            ready = true;
            this.log.info({ engine: reply.engine }, 'serving thread ready');
            resolve(worker);
            return;
          case 'failed':
            reject(new Error(`the serving thread did not start: ${reply.message}`));
            void worker.terminate();
            return;
          case 'log':
            this.log.info({ thread: 'serving', ...reply.fields }, reply.message);
            return;
          default: {
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
        }
        if (!ready) reject(new Error(`the serving thread did not start: ${why}`));
        const error = new Error(`the serving thread stopped: ${why}`);
        for (const { reject: fail } of this.pending.values()) fail(error);
        this.pending.clear();
        if (!this.disposed) this.log.error({ why }, 'serving thread stopped');
      };
      worker.on('error', (error) => gone(error.message));
      worker.on('exit', (code) => gone(`exit code ${code}`));
    });
  }
}
