import type * as grpc from '@grpc/grpc-js';
import type { DatasetSpec, ModelSpec, ObjectRef, WorkerClient } from '@lethe/proto';
import { callUnary, isRetryable, statusName, unavailable } from '@lethe/rpc';
import type { Logger } from 'pino';
import type { ExpertPlacement } from './expert-placement';
import type { RegisteredWorker, WorkerRegistry } from './worker-registry';

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
  readonly checkpoints: Map<number, ExpertCheckpoint>;

  constructor(
    private readonly placement: ExpertPlacement,
    private readonly registry: WorkerRegistry,
    private readonly log: Logger,
    private readonly options: ExpertSessionOptions,
  ) {
    this.checkpoints = options.checkpoints;
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
        const lost = this.registry.get(worker.id)?.state === 'lost';
        if (isRetryable(error)) {
          this.registry.markLost(worker.id, `${options.label} failed: ${name}`);
        } else if (!gone.has(name) && !lost) {
          throw error;
        }
        this.loaded.delete(expert);
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
  async ensure(expert: number): Promise<RegisteredWorker> {
    let worker = this.placement.workerOf(expert);
    if (!worker) {
      // Right after a (coordinator) restart workers are still registering: give them time.
      await this.registry.waitForLive(this.options.workerWaitMs ?? 30_000);
      this.placement.place();
      worker = this.placement.workerOf(expert);
    }
    if (!worker) throw unavailable(`no live worker can host expert ${expert}`);
    if (this.loaded.get(expert) === worker.id) return worker;
    const deadline = { deadlineMs: this.options.deadlineMs, retries: 2 };
    const held = this.datasetsOn.get(worker.id) ?? new Set<string>();
    for (const [key, dataset] of Object.entries(this.options.datasets)) {
      if (held.has(key)) continue;
      await this.timed('LoadDataset', () =>
        callUnary(worker.client, worker.client.loadDataset, { key, dataset }, deadline),
      );
      held.add(key);
    }
    this.datasetsOn.set(worker.id, held);
    const checkpoint = this.checkpoints.get(expert) ?? { lastStepId: 0 };
    if (this.options.freshOptimizer) {
      await this.timed('Release', () =>
        callUnary(
          worker.client,
          worker.client.release,
          { expertIds: [expert], datasetKeys: [], all: false },
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
