import { RpcError } from '@lethe/rpc';

/** The argument of a bridge method: each takes one structured-cloneable value. */
type ArgOf<F> = F extends (arg: infer A) => unknown ? A : never;
/** What a bridge method answers. */
type ResultOf<F> = F extends (arg: never) => infer R ? Awaited<R> : never;

/** What a bridge needs of a thread or of its parent port. */
export interface BridgePort {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

type Message =
  | { kind: 'call'; id: number; method: string; arg: unknown }
  | { kind: 'notify'; method: string; arg: unknown }
  | { kind: 'result'; id: number; value: unknown }
  | { kind: 'error'; id: number; error: WireError };

/** An error as it crosses threads: its message, its gRPC status and its `code` (store errors). */
interface WireError {
  message: string;
  status?: number;
  code?: string;
}

function toWire(error: unknown): WireError {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof RpcError) return { message, status: error.code };
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? { message, code } : { message };
}

/** An error from the other side, as the same kind of error on this one. */
function fromWire(wire: WireError): Error {
  if (wire.status !== undefined) return new RpcError(wire.status, wire.message);
  const error = new Error(wire.message) as Error & { code?: string };
  if (wire.code !== undefined) error.code = wire.code;
  return error;
}

/**
 * Request/response and one-way messages between the coordinator's main thread and an engine
 * thread, over a worker_threads port. Each side serves `local` and calls the other's `Remote`
 * API; an RpcError thrown on one side is an RpcError with the same status on the other.
 */
export class Bridge<Local extends object, Remote extends object> {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();

  constructor(
    private readonly port: BridgePort,
    private readonly local: Local,
  ) {
    port.on('message', (message) => this.receive(message as Message));
  }

  /** Calls `method` on the other side and resolves with its answer. */
  call<K extends keyof Remote & string>(
    method: K,
    arg: ArgOf<Remote[K]>,
  ): Promise<ResultOf<Remote[K]>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.port.postMessage({ kind: 'call', id, method, arg } satisfies Message);
    });
  }

  /** Calls `method` on the other side without waiting for (or getting) an answer. */
  notify<K extends keyof Remote & string>(method: K, arg: ArgOf<Remote[K]>): void {
    this.port.postMessage({ kind: 'notify', method, arg } satisfies Message);
  }

  /** Fails every call still waiting for an answer (the other side is gone). */
  failPending(error: Error): void {
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
  }

  private receive(message: Message): void {
    switch (message.kind) {
      case 'result':
      case 'error': {
        const waiting = this.pending.get(message.id);
        if (!waiting) return;
        this.pending.delete(message.id);
        if (message.kind === 'result') waiting.resolve(message.value);
        else waiting.reject(fromWire(message.error));
        return;
      }
      case 'notify':
        void this.invoke(message.method, message.arg).catch(() => undefined);
        return;
      case 'call':
        this.invoke(message.method, message.arg).then(
          (value) => this.port.postMessage({ kind: 'result', id: message.id, value }),
          (error: unknown) =>
            this.port.postMessage({ kind: 'error', id: message.id, error: toWire(error) }),
        );
    }
  }

  private async invoke(method: string, arg: unknown): Promise<unknown> {
    const handler = (this.local as Record<string, ((arg: unknown) => unknown) | undefined>)[method];
    if (!handler) throw new Error(`engine bridge: no method ${method}`);
    return handler(arg);
  }
}
