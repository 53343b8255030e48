import { Worker } from 'node:worker_threads';
import { threadEntry } from '@lethe/engine';
import { unavailable } from '@lethe/rpc';
import type { Logger } from 'pino';
import { Bridge } from './bridge';
import type { EngineApi, EngineThreadData, HostApi } from './engine-protocol';

/** The main thread's end of the registry and a job's reports (HostApi without `ready`). */
export type HostHandlers = Omit<HostApi, 'ready'>;

/**
 * An engine thread seen from the main thread: started on first use, restarted on the next use
 * after it exits (calls in flight then fail with UNAVAILABLE), stopped at shutdown.
 */
export class EngineThread {
  private started: Promise<Bridge<HostApi, EngineApi>> | undefined;
  private worker: Worker | undefined;
  private stopping = false;

  constructor(
    private readonly data: EngineThreadData,
    private readonly handlers: HostHandlers,
    private readonly log: Logger,
  ) {}

  /** The running thread's bridge, starting the thread if needed. */
  bridge(): Promise<Bridge<HostApi, EngineApi>> {
    if (this.stopping) return Promise.reject(unavailable('the coordinator is shutting down'));
    this.started ??= this.start();
    return this.started;
  }

  private start(): Promise<Bridge<HostApi, EngineApi>> {
    const { file, execArgv } = threadEntry(__dirname, 'engine-thread');
    const worker = new Worker(file, { workerData: this.data, execArgv });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let ready = false;
      const bridge = new Bridge<HostApi, EngineApi>(worker, {
        ...this.handlers,
        ready: ({ engine }) => {
          ready = true;
          this.log.info({ thread: this.data.role, engine }, 'engine thread ready');
          resolve(bridge);
        },
      });
      const gone = (why: string): void => {
        this.started = undefined;
        this.worker = undefined;
        const error = unavailable(`the ${this.data.role} engine thread stopped: ${why}`);
        bridge.failPending(error);
        if (!ready) reject(error);
      };
      worker.on('error', (error) => {
        this.log.error({ thread: this.data.role, err: error }, 'engine thread failed');
        gone(error.message);
      });
      worker.on('exit', (code) => {
        if (!this.stopping) this.log.warn({ thread: this.data.role, code }, 'engine thread exited');
        gone(`exit code ${code}`);
      });
    });
  }

  /** Ends the thread; anything still running in it fails with UNAVAILABLE. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.worker?.terminate();
  }
}
