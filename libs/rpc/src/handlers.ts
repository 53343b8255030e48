import {
  type handleServerStreamingCall,
  type handleUnaryCall,
  type ServerUnaryCall,
  type ServerWritableStream,
  status,
  type StatusObject,
} from '@grpc/grpc-js';
import { RpcError } from './errors';

/** What the handler wrappers log unexpected errors to; a pino logger fits. */
export interface RpcLogger {
  error(obj: object, msg: string): void;
  warn?(obj: object, msg: string): void;
}

/**
 * Failures with a status of their own although no handler chose one: stored bytes that do not
 * match their hash (DATA_LOSS, as common.proto promises), a full or read-only disk (UNAVAILABLE:
 * nothing was written, retry once there is room).
 */
function knownFailure(error: unknown): status | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ERR_STORE_INTEGRITY') return status.DATA_LOSS;
  if (code === 'ENOSPC' || code === 'EROFS' || code === 'EDQUOT') return status.UNAVAILABLE;
  return undefined;
}

/**
 * The status a handler's error ends the call with: an RpcError's own code and message, anything
 * else INTERNAL with its message (logged, since it is a bug or an unexpected failure).
 */
export function toStatus(
  error: unknown,
  method: string,
  log: RpcLogger | undefined,
): Partial<StatusObject> {
  if (error instanceof RpcError) return { code: error.code, details: error.message };
  const known = knownFailure(error);
  if (known) {
    log?.warn?.({ err: error, method, code: status[known] }, 'rpc failed');
    return { code: known, details: error instanceof Error ? error.message : String(error) };
  }
  log?.error({ err: error, method }, 'rpc handler failed');
  const message = error instanceof Error ? error.message : String(error);
  return { code: status.INTERNAL, details: message || 'internal error' };
}

/**
 * Wraps an async handler as a grpc-js unary handler: a resolved value is the response; a thrown
 * RpcError ends the call with its code and message; any other error with INTERNAL and its
 * message, logged to `log`.
 */
export function unaryHandler<Req, Res>(
  handler: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  log?: RpcLogger,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let result: Promise<Res>;
    try {
      result = handler(call.request, call);
    } catch (error) {
      callback(toStatus(error, call.getPath(), log));
      return;
    }
    result.then(
      (response) => callback(null, response),
      (error: unknown) => callback(toStatus(error, call.getPath(), log)),
    );
  };
}

/**
 * Wraps an async server-streaming handler: the handler writes to the call and resolves when it
 * is done, which ends the stream with OK; an error ends it with a status as in unaryHandler.
 */
export function serverStreamHandler<Req, Res>(
  handler: (request: Req, call: ServerWritableStream<Req, Res>) => Promise<void>,
  log?: RpcLogger,
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    const fail = (error: unknown): void => {
      const statusObject = toStatus(error, call.getPath(), log);
      if (call.writableEnded || call.destroyed) return;
      // grpc-js turns an 'error' event on a server stream into the call's final status.
      call.emit('error', statusObject);
    };
    let result: Promise<void>;
    try {
      result = handler(call.request, call);
    } catch (error) {
      fail(error);
      return;
    }
    result.then(() => {
      if (!call.writableEnded && !call.destroyed) call.end();
    }, fail);
  };
}
