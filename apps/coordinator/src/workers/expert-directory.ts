import type { WorkerClient } from '@lethe/proto';
import type { ExpertPlacement } from './expert-placement';
import type { WorkerRegistry } from './worker-registry';

/** A live worker as an expert session sees it: enough to call it and to report it lost. */
export interface WorkerHandle {
  id: string;
  address: string;
  client: WorkerClient;
}

/**
 * Where the current model's experts live, as jobs and serving need it. The registry and the
 * placement belong to the coordinator's main thread (heartbeats keep them current); sessions in
 * an engine thread reach them through this interface, hence every answer is a promise.
 */
export interface ExpertDirectory {
  /** The model being worked on has this many experts: place them. */
  setExpertCount(experts: number): Promise<void>;
  /**
   * The live worker hosting `expert`. When none is placed (right after a coordinator restart,
   * workers are still registering) waits up to `waitMs` for one to register, then places.
   */
  locate(expert: number, waitMs: number): Promise<WorkerHandle | undefined>;
  /** Whether the registry has given up on a worker. */
  isLost(workerId: string): Promise<boolean>;
  /** Declares a worker lost (calls to it fail): its experts are re-placed. */
  markLost(workerId: string, reason: string): Promise<void>;
  /** Live workers now, for job logs and training records. */
  liveCount(): Promise<number>;
}

/** The directory over the main thread's own registry and placement, for one holder. */
export class LocalExpertDirectory implements ExpertDirectory {
  constructor(
    private readonly placement: ExpertPlacement,
    private readonly registry: WorkerRegistry,
    /** Who asks: jobs and serving may work with models of different sizes at once. */
    private readonly holder: 'job' | 'serving' = 'job',
  ) {}

  async setExpertCount(experts: number): Promise<void> {
    this.placement.setExpertCount(experts, this.holder);
  }

  async locate(expert: number, waitMs: number): Promise<WorkerHandle | undefined> {
    let worker = this.placement.workerOf(expert);
    if (!worker) {
      await this.registry.waitForLive(waitMs);
      this.placement.place();
      worker = this.placement.workerOf(expert);
    }
    return worker;
  }

  async isLost(workerId: string): Promise<boolean> {
    return this.registry.get(workerId)?.state === 'lost';
  }

  async markLost(workerId: string, reason: string): Promise<void> {
    this.registry.markLost(workerId, reason);
  }

  async liveCount(): Promise<number> {
    return this.registry.live().length;
  }
}
