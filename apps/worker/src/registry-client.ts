import { type ChannelCredentials, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { type Device, type ReassignmentHint, RegistryClient } from '@lethe/proto';
import { backoffDelay, callUnary, statusName } from '@lethe/rpc';
import type { Logger } from './logger';

/** What the worker reports with each heartbeat; the client turns busy time into a fraction. */
export interface LoadSnapshot {
  expertIds: number[];
  inflightCalls: number;
  memoryUsedBytes: number;
  /** Milliseconds spent computing since the worker started (monotonic). */
  busyMs: number;
}

export interface RegistrationOptions {
  /** The coordinator's host:port. */
  coordinator: string;
  /** This worker's Worker service address, as the coordinator reaches it. */
  address: string;
  name?: string;
  version: string;
  device: Device;
  maxExperts: number;
  load: () => LoadSnapshot;
  log: Logger;
  /** Called when the coordinator rejects the registration for good (INVALID_ARGUMENT). */
  onFatal?: (error: Error) => void;
  /** First wait between Register attempts, doubled up to maxBackoffMs (default 200 / 5 000). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Deadline of each Registry call (default 5 000 ms). */
  deadlineMs?: number;
  /** How to reach the coordinator: TLS with this worker's client certificate; default plaintext. */
  credentials?: ChannelCredentials;
}

const MIN_INTERVAL_MS = 100;

/**
 * The worker's side of the Registry service: Register (retried with backoff until the
 * coordinator answers), a Heartbeat every heartbeat_interval_ms with the worker's load,
 * Register again when a heartbeat answers NOT_FOUND, and Deregister when shutting down.
 */
export class Registration {
  private client: RegistryClient;
  private failedBeats = 0;
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private intervalMs = 1_000;
  private lastBusy: { at: number; busyMs: number } | undefined;
  private stopped = false;
  /** The id from the latest successful Register; undefined before and while re-registering. */
  workerId: string | undefined;
  /** Registrations so far (1 after the first; more after NOT_FOUND). */
  registrations = 0;

  constructor(private readonly options: RegistrationOptions) {
    this.client = this.connect();
  }

  private connect(): RegistryClient {
    return new RegistryClient(
      this.options.coordinator,
      this.options.credentials ?? credentials.createInsecure(),
    );
  }

  /** Starts registering in the background; resolves once registered (or stopped first). */
  start(): Promise<void> {
    const registered = this.registerUntilDone().then((ok) => {
      if (ok) this.schedule();
    });
    this.running = registered.catch(() => undefined);
    return registered;
  }

  /** Stops registering and heartbeats (idempotent); Deregister is separate. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    clearTimeout(this.timer);
    await this.running;
  }

  /** Deregisters (best effort, one attempt) and closes the channel. Call after stop(). */
  async deregister(): Promise<void> {
    await this.stop();
    const workerId = this.workerId;
    if (workerId !== undefined) {
      try {
        await callUnary(
          this.client,
          this.client.deregister,
          { workerId },
          { deadlineMs: this.options.deadlineMs ?? 5_000 },
        );
        this.options.log.info({ workerId }, 'deregistered from coordinator');
      } catch (error) {
        this.options.log.warn({ workerId, err: error }, 'deregister failed');
      }
      this.workerId = undefined;
    }
    this.client.close();
  }

  private async registerUntilDone(): Promise<boolean> {
    const { log, coordinator } = this.options;
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const response = await callUnary(
          this.client,
          this.client.register,
          {
            address: this.options.address,
            device: this.options.device,
            capacity: { maxExperts: this.options.maxExperts },
            name: this.options.name ?? '',
            version: this.options.version,
          },
          { deadlineMs: this.options.deadlineMs ?? 5_000, signal: this.abort.signal },
        );
        this.workerId = response.workerId;
        this.registrations++;
        this.setInterval(response.heartbeatIntervalMs);
        log.info(
          {
            workerId: response.workerId,
            coordinator,
            heartbeatIntervalMs: this.intervalMs,
            heartbeatTimeoutMs: response.heartbeatTimeoutMs,
          },
          'registered with coordinator',
        );
        return true;
      } catch (error) {
        if (this.stopped) return false;
        const code = (error as Partial<ServiceError>).code;
        const fields = {
          coordinator,
          attempt: attempt + 1,
          code: statusName(code ?? status.UNKNOWN),
          err: error,
        };
        if (code === status.INVALID_ARGUMENT) {
          log.error(fields, 'coordinator rejected the registration');
          this.options.onFatal?.(error as Error);
          return false;
        }
        // UNAVAILABLE while the coordinator starts is expected: say so once, then now and then.
        const refused = code === status.UNAUTHENTICATED || code === status.PERMISSION_DENIED;
        if (refused && (attempt === 0 || attempt % 10 === 9)) {
          // A certificate the coordinator does not accept: retried, since certificates rotate.
          log.error(fields, "the coordinator refused this worker's client certificate; retrying");
        } else if (attempt === 0 || attempt % 10 === 9 || code === status.ALREADY_EXISTS) {
          log.warn(fields, 'cannot register with coordinator yet; retrying');
        }
      }
      const wait = backoffDelay(
        attempt,
        this.options.backoffMs ?? 200,
        this.options.maxBackoffMs ?? 5_000,
      );
      if (!(await this.sleep(wait))) return false;
    }
    return false;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.beat().finally(() => this.schedule());
    }, this.intervalMs);
  }

  private async beat(): Promise<void> {
    const { log } = this.options;
    const workerId = this.workerId;
    if (workerId === undefined || this.stopped) return;
    try {
      const response = await callUnary(
        this.client,
        this.client.heartbeat,
        { workerId, load: this.snapshot() },
        {
          deadlineMs: Math.min(this.options.deadlineMs ?? 5_000, Math.max(this.intervalMs, 1_000)),
          signal: this.abort.signal,
        },
      );
      this.failedBeats = 0;
      if (response.heartbeatIntervalMs) this.setInterval(response.heartbeatIntervalMs);
      if (response.hint) logHint(log, workerId, response.hint);
    } catch (error) {
      if (this.stopped) return;
      const code = (error as Partial<ServiceError>).code;
      if (code === status.NOT_FOUND) {
        log.warn({ workerId }, 'coordinator does not know this worker; registering again');
        this.workerId = undefined;
        await this.registerUntilDone();
        return;
      }
      log.warn(
        { workerId, code: statusName(code ?? status.UNKNOWN), err: error },
        'heartbeat failed',
      );
      // A channel that saw its peer vanish (a coordinator killed and restarted on the same
      // address) can sit in reconnect backoff long past the restart: start a fresh one.
      if (++this.failedBeats % 3 === 0) {
        this.client.close();
        this.client = this.connect();
      }
    }
  }

  private snapshot(): {
    expertIds: number[];
    inflightCalls: number;
    busyFraction: number;
    memoryUsedBytes: number;
  } {
    const load = this.options.load();
    const now = performance.now();
    const last = this.lastBusy;
    this.lastBusy = { at: now, busyMs: load.busyMs };
    const busyFraction =
      last && now > last.at
        ? Math.min(1, Math.max(0, (load.busyMs - last.busyMs) / (now - last.at)))
        : 0;
    return {
      expertIds: load.expertIds,
      inflightCalls: load.inflightCalls,
      busyFraction,
      memoryUsedBytes: Math.round(load.memoryUsedBytes),
    };
  }

  private setInterval(ms: number): void {
    this.intervalMs = Math.max(MIN_INTERVAL_MS, ms || 1_000);
  }

  /** Resolves true after `ms`, false at once when stopped. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve(false);
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.abort.signal.removeEventListener('abort', onAbort);
        resolve(true);
      }, ms);
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function logHint(log: Logger, workerId: string, hint: ReassignmentHint): void {
  log.info(
    {
      workerId,
      incoming: hint.incomingExpertIds,
      outgoing: hint.outgoingExpertIds,
      reason: hint.reason,
    },
    'placement change announced',
  );
}
