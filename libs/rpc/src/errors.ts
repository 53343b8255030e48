import { status } from '@grpc/grpc-js';

/**
 * An error a handler throws on purpose: it ends the call with this status code and the message
 * as the status details. Anything else a handler throws is reported as INTERNAL.
 */
export class RpcError extends Error {
  override readonly name = 'RpcError';

  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

const rpcError =
  (code: status) =>
  (message: string): RpcError =>
    new RpcError(code, message);

export const invalidArgument = rpcError(status.INVALID_ARGUMENT);
export const notFound = rpcError(status.NOT_FOUND);
export const failedPrecondition = rpcError(status.FAILED_PRECONDITION);
export const alreadyExists = rpcError(status.ALREADY_EXISTS);
export const resourceExhausted = rpcError(status.RESOURCE_EXHAUSTED);
export const dataLoss = rpcError(status.DATA_LOSS);
export const unavailable = rpcError(status.UNAVAILABLE);
export const internal = rpcError(status.INTERNAL);
export const unauthenticated = rpcError(status.UNAUTHENTICATED);
export const permissionDenied = rpcError(status.PERMISSION_DENIED);
export const deadlineExceeded = rpcError(status.DEADLINE_EXCEEDED);
export const cancelled = rpcError(status.CANCELLED);
export const aborted = rpcError(status.ABORTED);
export const unimplemented = rpcError(status.UNIMPLEMENTED);

/** The canonical name of a status code, e.g. `NOT_FOUND`; `STATUS_<n>` for an unknown code. */
export function statusName(code: status): string {
  const name = (status as unknown as Record<number, string | undefined>)[code];
  return typeof name === 'string' ? name : `STATUS_${String(code)}`;
}
