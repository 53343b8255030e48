import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import {
  type DeregisterRequest,
  type DeregisterResponse,
  type Device,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type RegisterRequest,
  type RegisterResponse,
  WorkerClient,
  type WorkerLoad,
} from '@lethe/proto';
import { alreadyExists, invalidArgument, notFound } from '@lethe/rpc';
import type { Logger } from 'pino';

export type WorkerHealth = 'alive' | 'suspect' | 'lost';

export interface RegisteredWorker {
  id: string;
  address: string;
  name: string;
  version: string;
  device: Device | undefined;
  maxExperts: number;
  registeredAt: Date;
  lastHeartbeat: Date;
  state: WorkerHealth;
  load: WorkerLoad | undefined;
  client: WorkerClient;
}

export interface RegistryTimings {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
}

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Workers that registered, and whether they are alive. A worker silent for longer than one
 * heartbeat interval is suspect (its experts stay put), past the timeout it is lost and emits
 * `lost`, upon which placement moves its experts. Emits `joined` for every registration.
 */
export class WorkerRegistry extends EventEmitter<{
  joined: [RegisteredWorker];
  lost: [RegisteredWorker, string];
}> {
  private readonly workers = new Map<string, RegisteredWorker>();
  private nextId = 1;
  /**
   * Ids carry this coordinator process's incarnation: after a restart, a worker still holding an
   * id from before must get NOT_FOUND (and register again), not another worker's record.
   */
  private readonly incarnation = randomBytes(3).toString('hex');
  private readonly timer: NodeJS.Timeout;
  private lastSweep = Date.now();
  /** Placement answers heartbeats with the experts a worker should hold. */
  assignedTo: (workerId: string) => number[] = () => [];

  constructor(
    private readonly timings: RegistryTimings,
    private readonly log: Logger,
    /** How the coordinator calls workers: its client certificate with TLS; default plaintext. */
    private readonly channelCredentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    super();
    this.timer = setInterval(() => this.sweep(), Math.max(50, timings.heartbeatIntervalMs / 2));
    this.timer.unref();
  }

  register(request: RegisterRequest): RegisterResponse {
    if (!/^[^:\s]+:\d{1,5}$/.test(request.address)) {
      throw invalidArgument(`address must be host:port, got ${JSON.stringify(request.address)}`);
    }
    const maxExperts = request.capacity?.maxExperts ?? 0;
    if (maxExperts < 1) throw invalidArgument('capacity.max_experts must be at least 1');
    const now = Date.now();
    if (request.name) {
      const holder = [...this.workers.values()].find(
        (w) => w.name === request.name && w.state !== 'lost',
      );
      if (holder && holder.address !== request.address) {
        if (now - holder.lastHeartbeat.getTime() <= this.timings.heartbeatTimeoutMs) {
          throw alreadyExists(
            `worker name ${request.name} is held by live worker ${holder.id} at ${holder.address}`,
          );
        }
      }
    }
    // The same address registering again is the same machine restarted: its old self is gone.
    for (const old of this.workers.values()) {
      if (
        old.state !== 'lost' &&
        (old.address === request.address || (request.name && old.name === request.name))
      ) {
        this.markLost(old.id, 'registered again (restarted)');
      }
    }
    const worker: RegisteredWorker = {
      id: `w-${this.incarnation}-${this.nextId++}`,
      address: request.address,
      name: request.name,
      version: request.version,
      device: request.device,
      maxExperts,
      registeredAt: new Date(now),
      lastHeartbeat: new Date(now),
      state: 'alive',
      load: undefined,
      client: new WorkerClient(request.address, this.channelCredentials, {
        'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      }),
    };
    this.workers.set(worker.id, worker);
    this.log.info(
      { workerId: worker.id, address: worker.address, name: worker.name, maxExperts },
      'worker registered',
    );
    this.emit('joined', worker);
    return {
      workerId: worker.id,
      heartbeatIntervalMs: this.timings.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.timings.heartbeatTimeoutMs,
    };
  }

  heartbeat(request: HeartbeatRequest): HeartbeatResponse {
    if (!request.workerId) throw invalidArgument('worker_id is required');
    const worker = this.workers.get(request.workerId);
    if (!worker || worker.state === 'lost') {
      throw notFound(`unknown worker ${request.workerId}: register again`);
    }
    worker.lastHeartbeat = new Date();
    worker.load = request.load;
    if (worker.state === 'suspect') {
      worker.state = 'alive';
      this.log.info({ workerId: worker.id }, 'worker alive again');
    }
    return {
      ack: true,
      heartbeatIntervalMs: this.timings.heartbeatIntervalMs,
      assignedExpertIds: this.assignedTo(worker.id),
      hint: undefined,
    };
  }

  deregister(request: DeregisterRequest): DeregisterResponse {
    if (!request.workerId) throw invalidArgument('worker_id is required');
    if (this.workers.has(request.workerId)) this.markLost(request.workerId, 'deregistered');
    return {};
  }

  /** Declares a worker lost (timeout, deregistration, or calls to it failing). */
  markLost(workerId: string, reason: string): void {
    const worker = this.workers.get(workerId);
    if (!worker || worker.state === 'lost') return;
    worker.state = 'lost';
    // Calls in flight fail by themselves (UNAVAILABLE or their deadline); closing the channel
    // now would turn them into errors without a status. Close once they have had their chance.
    setTimeout(() => worker.client.close(), 60_000).unref();
    this.log.warn({ workerId, address: worker.address, reason }, 'worker lost');
    this.emit('lost', worker, reason);
  }

  get(workerId: string): RegisteredWorker | undefined {
    return this.workers.get(workerId);
  }

  /** Workers that can take work, oldest registration first. */
  live(): RegisteredWorker[] {
    return [...this.workers.values()].filter((w) => w.state !== 'lost');
  }

  all(): RegisteredWorker[] {
    return [...this.workers.values()];
  }

  close(): void {
    clearInterval(this.timer);
    for (const w of this.workers.values()) if (w.state !== 'lost') w.client.close();
  }

  /** Resolves once a worker can take work, or after `timeoutMs` (false). */
  waitForLive(timeoutMs: number): Promise<boolean> {
    if (this.live().length > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.off('joined', joined);
        resolve(false);
      }, timeoutMs);
      const joined = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.once('joined', joined);
    });
  }

  private sweep(): void {
    const now = Date.now();
    const stalled = now - this.lastSweep;
    this.lastSweep = now;
    if (stalled > 2 * this.timings.heartbeatIntervalMs) {
      // This process was busy (a long synchronous computation): heartbeats that arrived in the
      // meantime are still queued, so silence says nothing about the workers. Judge them afresh.
      this.log.warn({ stalledMs: stalled }, 'coordinator was busy; heartbeat deadlines extended');
      for (const worker of this.workers.values()) {
        worker.lastHeartbeat = new Date(Math.max(worker.lastHeartbeat.getTime(), now));
      }
      return;
    }
    for (const worker of this.workers.values()) {
      if (worker.state === 'lost') continue;
      const silent = now - worker.lastHeartbeat.getTime();
      if (silent > this.timings.heartbeatTimeoutMs) {
        this.markLost(worker.id, `no heartbeat for ${silent} ms`);
      } else if (silent > 2 * this.timings.heartbeatIntervalMs && worker.state === 'alive') {
        worker.state = 'suspect';
        this.log.warn({ workerId: worker.id, silentMs: silent }, 'worker heartbeat late');
      }
    }
  }
}
