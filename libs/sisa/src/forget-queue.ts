import { type Dataset } from '@lethe/data';
import { type ObjectStore } from '@lethe/store';
import { replayBatch, type SisaForgetRequest, type SisaReceipt } from './sisa-model';
import { type SisaProgress } from './sisa-training';

export interface SisaForgetQueueOptions {
  /**
   * How long a batch stays open after its first request arrives, in milliseconds: requests
   * submitted within it — or while the previous replay still runs — share one replay. 0 starts
   * a replay on the next tick when none is running. Default 0.
   */
  windowMs?: number;
  onProgress?: (p: SisaProgress) => void;
  /** Called when a batch starts, with the request ids it holds. */
  onBatch?: (requestIds: readonly string[]) => void;
}

interface Pending {
  request: SisaForgetRequest;
  arrived: number;
  resolve: (receipt: SisaReceipt) => void;
  reject: (error: unknown) => void;
}

/**
 * Serialises sisa forget requests on one store and batches them: one replay runs at a time, and
 * the requests that arrive while it runs (or within `windowMs` of the first request of a batch)
 * are forgotten together by the next replay — one `trainSisa` over the layout without all their
 * samples, one manifest revision holding every request's own receipt (see `replayBatch`).
 *
 * The queue is in-process: it assumes it is the only writer of sisa forgets to the store (a
 * concurrent writer makes the publish fail its expected revision, and that batch rejects).
 */
export class SisaForgetQueue {
  readonly #windowMs: number;
  #pending: Pending[] = [];
  #running = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #replays = 0;
  #batches = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly train: Dataset,
    private readonly options: SisaForgetQueueOptions = {},
  ) {
    const windowMs = options.windowMs ?? 0;
    if (!(Number.isFinite(windowMs) && windowMs >= 0))
      throw new RangeError(`windowMs must be a finite number ≥ 0, got ${windowMs}`);
    this.#windowMs = windowMs;
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

  /** Queues a request; resolves with its receipt once the batch holding it is published. */
  submit(request: SisaForgetRequest): Promise<SisaReceipt> {
    return new Promise<SisaReceipt>((resolve, reject) => {
      this.#pending.push({
        request: { requestId: request.requestId, sampleIds: [...request.sampleIds] },
        arrived: performance.now(),
        resolve,
        reject,
      });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#running || this.#timer !== undefined || this.#pending.length === 0) return;
    const opened = this.#pending[0]!.arrived;
    const delay = Math.max(0, opened + this.#windowMs - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, delay);
  }

  async #run(): Promise<void> {
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
