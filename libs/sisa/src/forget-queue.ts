import { type Dataset } from '@lethe/data';
import { type ObjectStore } from '@lethe/store';
import { type ForgetClock, ForgetWindow } from './forget-window';
import { replayBatch, type SisaForgetRequest, type SisaReceipt } from './sisa-model';
import { type ShardTrainer, type SisaProgress } from './sisa-training';

export interface SisaForgetQueueOptions {
  /**
   * How long a batch stays open after its first request arrives, in milliseconds: requests
   * submitted within it — or while the previous replay still runs — share one replay. 0 starts
   * a replay on the next tick when none is running. Default 0; at most MAX_FORGET_WINDOW_MS.
   */
  windowMs?: number;
  /** The clock the window is measured on (default: the system clock). */
  clock?: ForgetClock;
  onProgress?: (p: SisaProgress) => void;
  /** Where shard models train (default: this process). */
  trainer?: ShardTrainer;
  /** Called when a batch starts, with the request ids it holds. */
  onBatch?: (requestIds: readonly string[]) => void;
}

/** A request withdrawn (SisaForgetQueue.cancel) before its batch started: nothing was forgotten. */
export class ForgetCancelledError extends Error {
  constructor(readonly requestId: string) {
    super(`forget request ${requestId} was cancelled before its batch started`);
    this.name = 'ForgetCancelledError';
  }
}

interface Pending {
  request: SisaForgetRequest;
  arrived: number;
  resolve: (receipt: SisaReceipt) => void;
  reject: (error: unknown) => void;
}

/**
 * Serialises sisa forget requests on one store and batches them: one replay runs at a time, and
 * the requests that arrive while it runs (or within `windowMs` of the first request of a batch,
 * see ForgetWindow) are forgotten together by the next replay — one `trainSisa` over the layout
 * without all their samples, one manifest revision holding every request's own receipt (see
 * `replayBatch`). A request still waiting for its batch can be cancelled.
 *
 * The queue is in-process: it assumes it is the only writer of sisa forgets to the store (a
 * concurrent writer makes the publish fail its expected revision, and that batch rejects).
 */
export class SisaForgetQueue {
  readonly #window: ForgetWindow;
  #pending: Pending[] = [];
  #running = false;
  #startArmed: (() => void) | undefined;
  #replays = 0;
  #batches = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly train: Dataset,
    private readonly options: SisaForgetQueueOptions = {},
  ) {
    this.#window = new ForgetWindow(options.windowMs ?? 0, options.clock);
  }

  /** Replays run so far (batches that trained; a batch of only refused or repeated ids does not). */
  get replays(): number {
    return this.#replays;
  }

  /** Batches processed so far, replayed or not. */
  get batches(): number {
    return this.#batches;
  }

  /** Requests waiting for the next batch. */
  get waiting(): number {
    return this.#pending.length;
  }

  /** Whether a batch is being processed now. */
  get busy(): boolean {
    return this.#running;
  }

  /** When the open batch closes (clock time), or undefined when no request waits. */
  get closesAt(): number | undefined {
    const first = this.#pending[0];
    return first && this.#window.closesAt(first.arrived);
  }

  /** Queues a request; resolves with its receipt once the batch holding it is published. */
  submit(request: SisaForgetRequest): Promise<SisaReceipt> {
    return new Promise<SisaReceipt>((resolve, reject) => {
      this.#pending.push({
        request: {
          requestId: request.requestId,
          sampleIds: [...request.sampleIds],
          ...(request.subjects ? { subjects: [...request.subjects] } : {}),
        },
        arrived: this.#window.clock.now(),
        resolve,
        reject,
      });
      this.#schedule();
    });
  }

  /**
   * Withdraws a request that still waits for its batch: its promise rejects with
   * ForgetCancelledError and the batch goes ahead without it. False when it is not waiting
   * (unknown, or its batch has started: a replay is not interrupted).
   */
  cancel(requestId: string): boolean {
    const withdrawn = this.#pending.filter((p) => p.request.requestId === requestId);
    if (withdrawn.length === 0) return false;
    this.#pending = this.#pending.filter((p) => p.request.requestId !== requestId);
    for (const p of withdrawn) p.reject(new ForgetCancelledError(requestId));
    // The window belongs to the first request still waiting (or to none).
    this.#window.cancel();
    this.#startArmed?.();
    this.#startArmed = undefined;
    this.#schedule();
    return true;
  }

  #schedule(): void {
    if (this.#running || this.#pending.length === 0) return;
    if (this.#window.waiting || this.#startArmed) return;
    const run = (): void => {
      this.#startArmed = undefined;
      void this.#run();
    };
    if (this.#window.wait(this.#pending[0]!.arrived, run)) return;
    // Closed already: start on the next tick, so requests submitted together share the batch.
    this.#startArmed = this.#window.clock.setTimer(run, 0);
  }

  async #run(): Promise<void> {
    if (this.#running || this.#pending.length === 0) return;
    const batch = this.#pending.splice(0);
    this.#running = true;
    this.#batches++;
    try {
      this.options.onBatch?.(batch.map((p) => p.request.requestId));
      const { outcomes, replayed } = await replayBatch(
        this.store,
        this.train,
        batch.map((p) => p.request),
        this.options.onProgress,
        this.options.trainer,
      );
      if (replayed) this.#replays++;
      outcomes.forEach((outcome, i) => {
        if ('error' in outcome) batch[i]!.reject(outcome.error);
        else batch[i]!.resolve(outcome.receipt);
      });
    } catch (error) {
      for (const p of batch) p.reject(error);
    } finally {
      this.#running = false;
      this.#schedule();
    }
  }
}
