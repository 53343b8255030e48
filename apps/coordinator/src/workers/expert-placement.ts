import type { Logger } from 'pino';
import { placeExperts } from './placement';
import type { RegisteredWorker, WorkerRegistry } from './worker-registry';

/**
 * Which live worker hosts each expert of the current model. Re-places the experts of a lost
 * worker at once; rebalances onto a worker that joins when no job is running (a running job
 * picks the change up at its next expert call).
 */
export class ExpertPlacement {
  private placement = new Map<number, string>();
  private experts = 0;
  /** Experts each user of the placement works with (a job's model, the served model). */
  private readonly wanted = new Map<string, number>();
  /** Set while a job runs: rebalancing then waits, since moving a live expert costs a checkpoint. */
  busy = false;

  constructor(
    private readonly registry: WorkerRegistry,
    private readonly log: Logger,
  ) {
    registry.assignedTo = (workerId) =>
      [...this.placement]
        .filter(([, w]) => w === workerId)
        .map(([e]) => e)
        .sort((a, b) => a - b);
    registry.on('lost', () => this.place());
    registry.on('joined', () => this.place({ rebalance: !this.busy }));
  }

  get expertCount(): number {
    return this.experts;
  }

  /**
   * `holder` (a job, serving) works with a model of this many experts. Placement covers the
   * largest of them, since a job may train a new model while serving answers from the old one.
   */
  setExpertCount(experts: number, holder = 'job'): void {
    this.wanted.set(holder, experts);
    const count = Math.max(...this.wanted.values());
    if (count === this.experts) return;
    this.experts = count;
    // Moving a live expert in the middle of a job costs it the steps since its last checkpoint.
    this.place({ rebalance: !this.busy });
  }

  workerOf(expert: number): RegisteredWorker | undefined {
    const id = this.placement.get(expert);
    const worker = id === undefined ? undefined : this.registry.get(id);
    return worker && worker.state !== 'lost' ? worker : undefined;
  }

  /** Total capacity of live workers. */
  capacity(): number {
    return this.registry.live().reduce((n, w) => n + w.maxExperts, 0);
  }

  snapshot(): ReadonlyMap<number, string> {
    return new Map(this.placement);
  }

  place(options: { rebalance?: boolean } = {}): void {
    const live = this.registry.live().map((w) => ({ id: w.id, capacity: w.maxExperts }));
    const next = placeExperts(this.experts, live, this.placement, options);
    for (let e = 0; e < this.experts; e++) {
      const before = this.placement.get(e);
      const after = next.get(e);
      if (before !== after) {
        this.log.info({ expert: e, from: before ?? null, to: after ?? null }, 'expert placed');
      }
    }
    this.placement = next;
  }
}
