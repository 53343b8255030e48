import type {
  Metadata,
  ServiceDefinition,
  StatusObject,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { permissionDenied, RpcError, unauthenticated } from './errors';
import { type RpcLogger, toStatus } from './handlers';
import type { CallInfo } from './tls';

/** Who made a call, as an authenticator established it. */
export interface Identity {
  /** A name for logs and the audit log: a token's subject or a certificate's common name. */
  subject: string;
  role: string;
  via: 'token' | 'certificate';
}

/**
 * Runs before every method of a service: throwing (an RpcError for a chosen status) refuses the
 * call before its handler sees it. May be async.
 */
export type CallGuard = (call: CallInfo, method: string) => void | Promise<void>;

/**
 * The bearer token of a call's `authorization: Bearer <token>` metadata; undefined when there
 * is no authorization entry. Anything else in it is UNAUTHENTICATED.
 */
export function bearerToken(metadata: Metadata): string | undefined {
  const values = metadata.get('authorization');
  if (values.length === 0) return undefined;
  const match = values.length === 1 ? /^Bearer +(\S+)\s*$/i.exec(String(values[0])) : null;
  if (!match) throw unauthenticated('malformed authorization metadata: expected "Bearer <token>"');
  return match[1]!;
}

interface GuardedCall extends CallInfo {
  emit(event: 'error', status: Partial<StatusObject>): boolean;
}

/**
 * Wraps every method of a grpc-js service implementation so that `guard` runs first; handlers
 * stay as they are. A guard that throws (or rejects) ends the call with the error's status
 * (an RpcError's code; INTERNAL, logged, for anything else).
 */
export function guardService<T extends object>(
  definition: ServiceDefinition,
  implementation: T,
  guard: CallGuard,
  log?: RpcLogger,
): T {
  const handlers = implementation as unknown as UntypedServiceImplementation;
  const guarded: UntypedServiceImplementation = { ...handlers };
  for (const [name, method] of Object.entries(definition)) {
    const handler = handlers[name];
    if (typeof handler !== 'function') continue;
    const run = (call: CallInfo, proceed: () => void, fail: (s: Partial<StatusObject>) => void) => {
      const refuse = (error: unknown): void => fail(toStatus(error, call.getPath(), log));
      let checked: void | Promise<void>;
      try {
        checked = guard(call, name);
      } catch (error) {
        refuse(error);
        return;
      }
      if (checked instanceof Promise) checked.then(proceed, refuse);
      else proceed();
    };
    const invoke = handler as (...args: unknown[]) => void;
    guarded[name] = (
      method.responseStream
        ? (call: GuardedCall) =>
            run(
              call,
              () => invoke(call),
              (s) => call.emit('error', s),
            )
        : (call: CallInfo, callback: (error: Partial<StatusObject>) => void) =>
            run(
              call,
              () => invoke(call, callback),
              (s) => callback(s),
            )
    ) as UntypedHandleCall;
  }
  return guarded as unknown as T;
}

const callers = new WeakMap<object, Identity>();

/** The identity authorizeService established for this call; undefined on an open service. */
export function callerOf(call: object): Identity | undefined {
  return callers.get(call);
}

/** A call authorizeService refused, for an audit trail. */
export interface Refusal {
  method: string;
  call: CallInfo;
  /** Undefined when the caller could not be authenticated. */
  identity: Identity | undefined;
  error: RpcError;
}

export interface AuthorizeOptions {
  /**
   * Who is calling: undefined when the call carries no credentials at all; throws an RpcError
   * (UNAUTHENTICATED) for credentials that do not check out.
   */
  authenticate(call: CallInfo): Identity | undefined;
  /** The roles allowed to call each method, by method name; a method not listed is refused. */
  roles: Readonly<Record<string, readonly string[]>>;
  /** Told of every refusal before the call ends (awaited when it returns a promise). */
  onRefused?(refusal: Refusal): void | Promise<void>;
  log?: RpcLogger;
}

/**
 * Role-based access to a service: no credentials → UNAUTHENTICATED; a role the method does not
 * allow → PERMISSION_DENIED; otherwise the handler runs and `callerOf(call)` names the caller.
 */
export function authorizeService<T extends object>(
  definition: ServiceDefinition,
  implementation: T,
  options: AuthorizeOptions,
): T {
  const names = Object.fromEntries(
    Object.entries(definition).map(([name, method]) => [name, method.path.split('/').pop()!]),
  );
  const guard: CallGuard = (call, method) => {
    let identity: Identity | undefined;
    let refusal: RpcError | undefined;
    try {
      identity = options.authenticate(call);
      if (!identity) {
        refusal = unauthenticated(
          'credentials required: send "authorization: Bearer <token>" metadata or a client certificate',
        );
      }
    } catch (error) {
      if (!(error instanceof RpcError)) throw error;
      refusal = error;
    }
    if (identity && !(options.roles[method] ?? []).includes(identity.role)) {
      const allowed = options.roles[method] ?? [];
      refusal = permissionDenied(
        `${identity.subject} (role ${identity.role}) may not call ${names[method] ?? method}` +
          (allowed.length > 0 ? `: it needs role ${allowed.join(' or ')}` : ''),
      );
    }
    if (!refusal) {
      callers.set(call, identity!);
      return;
    }
    options.log?.warn?.(
      {
        method: names[method] ?? method,
        peer: call.getPeer(),
        subject: identity?.subject,
        role: identity?.role,
        code: refusal.code,
        reason: refusal.message,
      },
      'call refused',
    );
    const error = refusal;
    const told = options.onRefused?.({ method, call, identity, error });
    if (told instanceof Promise) {
      return told.then(
        () => Promise.reject(error),
        () => Promise.reject(error),
      );
    }
    throw error;
  };
  return guardService(definition, implementation, guard, options.log);
}
