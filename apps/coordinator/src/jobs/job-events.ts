import { EventEmitter } from 'node:events';
import type { JobEvent } from '@lethe/proto';

type EventBody = NonNullable<JobEvent['event']>;

/**
 * The live event stream of each job (WatchJob). Sequence numbers count per job from 1; events
 * are not persisted: a watcher that connects later gets a status snapshot first.
 */
export class JobEvents {
  private readonly emitter = new EventEmitter().setMaxListeners(0);
  private readonly sequences = new Map<string, number>();

  publish(jobId: string, event: EventBody): JobEvent {
    const sequence = (this.sequences.get(jobId) ?? 0) + 1;
    this.sequences.set(jobId, sequence);
    const message: JobEvent = { jobId, sequence, time: new Date(), event };
    this.emitter.emit(jobId, message);
    return message;
  }

  latestSequence(jobId: string): number {
    return this.sequences.get(jobId) ?? 0;
  }

  /** Calls `listener` for every later event of the job; returns the unsubscribe function. */
  subscribe(jobId: string, listener: (event: JobEvent) => void): () => void {
    this.emitter.on(jobId, listener);
    return () => this.emitter.off(jobId, listener);
  }
}
