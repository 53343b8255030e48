import {
  type CallOptions as GrpcCallOptions,
  type Client,
  type ClientUnaryCall,
  type Interceptor,
  InterceptingCall,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { statusName } from './errors';

export interface CallOptions {
  /** Per-attempt deadline in ms (default 10 000). */
  deadlineMs?: number;
  /** Extra attempts on UNAVAILABLE or DEADLINE_EXCEEDED (default 0). */
  retries?: number;
  /**
   * First backoff in ms (default 100), doubled each retry with ±20% jitter, capped at
   * maxBackoffMs (default 2 000).
   */
  backoffMs?: number;
  maxBackoffMs?: number;
  metadata?: Metadata;
  /** Aborting cancels the call in flight (or the wait before a retry): rejects with CANCELLED. */
  signal?: AbortSignal;
}

/** A ts-proto grpc-js client method with its (request, metadata, options, callback) overload. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** A ServiceError made on the client side (e.g. for an aborted call), shaped as grpc-js makes them. */
export function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${statusName(code)}: ${details}`), {
    code,
    details,
    metadata: new Metadata(),
  });
}

/** True for the transient failures a unary call may be retried after: UNAVAILABLE, DEADLINE_EXCEEDED. */
export function isRetryable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  return code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED;
}

/** The wait before retry number `retry` (0-based): backoff·2^retry capped, then ±20% jitter. */
export function backoffDelay(retry: number, backoffMs: number, maxBackoffMs: number): number {
  const base = Math.min(maxBackoffMs, backoffMs * 2 ** retry);
  return Math.max(0, base * (0.8 + 0.4 * Math.random()));
}

/**
 * Calls a unary method of a ts-proto grpc-js client and returns the response, e.g.
 * `callUnary(client, client.forward, request, { deadlineMs: 5000, retries: 3 })`. Each attempt
 * has its own deadline; UNAVAILABLE and DEADLINE_EXCEEDED are retried `retries` times with
 * exponential backoff. Rejects with the grpc ServiceError (it has `.code`).
 */
export async function callUnary<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: CallOptions = {},
): Promise<Res> {
  const deadlineMs = options.deadlineMs ?? 10_000;
  const retries = options.retries ?? 0;
  const backoffMs = options.backoffMs ?? 100;
  const maxBackoffMs = options.maxBackoffMs ?? 2_000;
  const { signal } = options;
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw serviceError(status.CANCELLED, 'call aborted by the caller');
    try {
      return await attemptCall(client, method, request, deadlineMs, options.metadata, signal);
    } catch (error) {
      if (attempt >= retries || !isRetryable(error) || signal?.aborted) throw error;
    }
    await sleep(backoffDelay(attempt, backoffMs, maxBackoffMs), signal);
  }
}

function attemptCall<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  deadlineMs: number,
  metadata: Metadata | undefined,
  signal: AbortSignal | undefined,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const onAbort = (): void => call.cancel();
    // grpc-js enforces the deadline; this guard only catches a call it never settles (seen with
    // a channel stuck reconnecting to a restarted peer), a second later.
    const guard = setTimeout(() => {
      call.cancel();
      reject(serviceError(status.DEADLINE_EXCEEDED, `no answer within ${deadlineMs} ms`));
    }, deadlineMs + 1_000);
    const call = method.call(
      client,
      request,
      metadata?.clone() ?? new Metadata(),
      { deadline: Date.now() + deadlineMs },
      (error, response) => {
        clearTimeout(guard);
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve(response);
      },
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(serviceError(status.CANCELLED, 'call aborted by the caller'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A client interceptor that sends `authorization: Bearer <token>` with every call (unary and
 * streaming alike, over TLS or not): `new CoordinatorClient(address, creds, { interceptors:
 * [bearerTokenInterceptor(token)] })`.
 */
export function bearerTokenInterceptor(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}
