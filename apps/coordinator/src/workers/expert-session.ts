import type * as grpc from '@grpc/grpc-js';
import {
  type DatasetSpec,
  ExpertCopy,
  type ModelSpec,
  type ObjectRef,
  type WorkerClient,
} from '@lethe/proto';
import { callUnary, isRetryable, statusName, unavailable } from '@lethe/rpc';
import type { Logger } from 'pino';
import type { ExpertDirectory, WorkerHandle } from './expert-directory';

/** Where an expert resumes from: its last checkpoint, or fresh initialisation when unset. */
export interface ExpertCheckpoint {
  weights?: ObjectRef;
  optimizerState?: ObjectRef;
  lastStepId: number;
}

export interface ExpertSessionOptions {
  model: ModelSpec;
  /** Datasets every worker hosting one of the session's experts must hold, by key. */
  datasets: Record<string, DatasetSpec>;
  checkpoints: Map<number, ExpertCheckpoint>;
  /** Load experts with a fresh optimizer even where the worker holds them already. */
  freshOptimizer?: boolean;
  /**
   * Which of the workers' copies of the experts the session uses: the training copy (default)
   * or the serving copy, which serving loads with the published weights while jobs train.
   */
  copy?: ExpertCopy;
  deadlineMs: number;
  /** How long to wait for a worker to register when none is live. Default 30 s. */
  workerWaitMs?: number;
  /** Reports recoveries (an expert re-placed after its worker failed) to the job's log. */
  onRecovery?: (message: string) => void;
  /** Observes every call to a worker: its method and duration, failed calls included. */
  onRpc?: (method: string, seconds: number) => void;
}

const gone = new Set(['NOT_FOUND', 'FAILED_PRECONDITION']);

/**
 * One job's hold on its experts: makes sure each lives on a live worker that holds the job's
 * datasets and the expert at its checkpoint, and recovers when a worker fails: the worker is
 * declared lost, the expert re-placed and reloaded from its last checkpoint, and the call redone.
 */
export class ExpertSession {
  private readonly loaded = new Map<number, string>();
  private readonly datasetsOn = new Map<string, Set<string>>();
  private readonly datasets: Map<string, DatasetSpec>;
  readonly checkpoints: Map<number, ExpertCheckpoint>;
  /** The workers' copy of the experts this session loads and calls (ExpertCopy). */
  readonly copy: ExpertCopy;

  constructor(
    private readonly directory: ExpertDirectory,
    private readonly log: Logger,
    private readonly options: ExpertSessionOptions,
  ) {
    this.checkpoints = options.checkpoints;
    this.datasets = new Map(Object.entries(options.datasets));
    this.copy = options.copy ?? ExpertCopy.EXPERT_COPY_UNSPECIFIED;
  }

  /** Makes a dataset available under `key` on every worker the session calls from now on. */
  useDataset(key: string, dataset: DatasetSpec): void {
    if (this.datasets.has(key)) return;
    this.datasets.set(key, dataset);
  }

  /**
   * Calls `method` of the worker hosting `expert`. With `replay: false` a call that needed the
   * expert moved first is not made (returns undefined): e.g. a Backward whose Forward was lost.
   */
  async call<Req, Res>(
    expert: number,
    method: (client: WorkerClient) => Parameters<typeof callUnary<Req, Res>>[1],
    request: Req,
    options: { replay?: boolean; label: string },
  ): Promise<Res | undefined> {
    let moved = false;
    for (let attempt = 0; attempt < 4; attempt++) {
      const worker = await this.ensure(expert);
      if (moved && options.replay === false) return undefined;
      try {
        return await this.timed(options.label, () =>
          callUnary(worker.client, method(worker.client), request, {
            deadlineMs: this.options.deadlineMs,
            retries: 2,
          }),
        );
      } catch (error) {
        const code = (error as grpc.ServiceError).code;
        const name = typeof code === 'number' ? statusName(code) : 'UNKNOWN';
        const message = error instanceof Error ? error.message : String(error);
        const lost = await this.directory.isLost(worker.id);
        if (isRetryable(error)) {
          await this.directory.markLost(worker.id, `${options.label} failed: ${name}`);
        } else if (!gone.has(name) && !lost) {
          throw error;
        }
        this.loaded.delete(expert);
        // NOT_FOUND may name a dataset the worker no longer holds (it restarted): load again.
        this.datasetsOn.delete(worker.id);
        moved = true;
        const note = `expert ${expert}: ${options.label} on ${worker.id} failed (${name}: ${message}); re-placing from checkpoint at step ${this.checkpoints.get(expert)?.lastStepId ?? 0}`;
        this.log.warn({ expert, workerId: worker.id, method: options.label, code: name }, note);
        this.options.onRecovery?.(note);
      }
    }
    throw unavailable(`expert ${expert}: ${options.label} failed on every worker tried`);
  }

  /** Makes the next call load `expert` again from its checkpoint (e.g. a new starting point). */
  reset(expert: number): void {
    this.loaded.delete(expert);
  }

  /** The live worker hosting `expert`, after loading datasets and the expert there if needed. */
  async ensure(expert: number): Promise<WorkerHandle> {
    // Right after a (coordinator) restart workers are still registering: give them time.
    const worker = await this.directory.locate(expert, this.options.workerWaitMs ?? 30_000);
    if (!worker) throw unavailable(`no live worker can host expert ${expert}`);
    const deadline = { deadlineMs: this.options.deadlineMs, retries: 2 };
    const held = this.datasetsOn.get(worker.id) ?? new Set<string>();
    this.datasetsOn.set(worker.id, held);
    for (const [key, dataset] of this.datasets) {
      if (held.has(key)) continue;
      await this.timed('LoadDataset', () =>
        callUnary(worker.client, worker.client.loadDataset, { key, dataset }, deadline),
      );
      held.add(key);
    }
    if (this.loaded.get(expert) === worker.id) return worker;
    const checkpoint = this.checkpoints.get(expert) ?? { lastStepId: 0 };
    if (this.options.freshOptimizer) {
      await this.timed('Release', () =>
        callUnary(
          worker.client,
          worker.client.release,
          { expertIds: [expert], datasetKeys: [], all: false, copy: this.copy },
          deadline,
        ),
      );
    }
    await this.timed('AssignExperts', () =>
      callUnary(
        worker.client,
        worker.client.assignExperts,
        {
          model: this.options.model,
          experts: [
            {
              expertId: expert,
              weights: checkpoint.weights,
              optimizerState: checkpoint.optimizerState,
              lastStepId: checkpoint.lastStepId,
            },
          ],
          replaceAll: false,
          copy: this.copy,
        },
        deadline,
      ),
    );
    this.loaded.set(expert, worker.id);
    return worker;
  }

  /** Runs one call to a worker, reporting its duration to `onRpc` whether it succeeds or not. */
  private async timed<T>(method: string, call: () => Promise<T>): Promise<T> {
    const onRpc = this.options.onRpc;
    if (!onRpc) return call();
    const started = performance.now();
    try {
      return await call();
    } finally {
      onRpc(method, (performance.now() - started) / 1000);
    }
  }

  /** Checkpoints `expert` on its worker and remembers where it can resume from. */
  async checkpoint(expert: number): Promise<ExpertCheckpoint> {
    const response = await this.call(
      expert,
      (c) => c.checkpoint,
      { expertId: expert },
      {
        label: 'Checkpoint',
      },
    );
    const checkpoint: ExpertCheckpoint = {
      ...(response!.weights ? { weights: response!.weights } : {}),
      ...(response!.optimizerState ? { optimizerState: response!.optimizerState } : {}),
      lastStepId: response!.lastStepId,
    };
    this.checkpoints.set(expert, checkpoint);
    return checkpoint;
  }
}
