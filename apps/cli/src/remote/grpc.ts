import { type Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { CoordinatorClient, Job, type JobEvent, JobState, jobStateToJSON } from '@lethe/proto';
import {
  bearerTokenInterceptor,
  type CallOptions,
  callUnary as rpcCallUnary,
  statusName,
  tlsChannelCredentials,
  type UnaryMethod,
} from '@lethe/rpc';
import { CliError } from '../terminal/errors';
import type { Connection, CoordinatorTarget } from './target';

/** Deadline of ordinary unary calls (listing, submitting, fetching a receipt). */
export const UNARY_DEADLINE_MS = 30_000;
/** Deadline of Evaluate, which runs synchronously over a whole test split. */
export const EVALUATE_DEADLINE_MS = 30 * 60_000;

/** The host of `host:port` / `[v6]:port`. */
function hostOf(address: string): string {
  return address.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
}

/**
 * A client of the public Coordinator service; close it when done so the process can exit. With
 * a connection: TLS (server verified against its CA, a client certificate if given) and/or a
 * bearer token on every call; plaintext and anonymous without.
 */
export function connectCoordinator(address: string, connection?: Connection): CoordinatorClient {
  const tls = connection?.tls;
  return new CoordinatorClient(
    address,
    tls ? tlsChannelCredentials(tls) : credentials.createInsecure(),
    connection?.token ? { interceptors: [bearerTokenInterceptor(connection.token)] } : {},
  );
}

/** Loopback: where a token over plaintext does not cross the network. */
function isLoopback(address: string): boolean {
  const host = hostOf(address);
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * @lethe/rpc's callUnary with the CLI's deadline (UNARY_DEADLINE_MS unless given) and, by
 * default, no retries: the CLI reports a failure rather than hiding it.
 */
export function callUnary<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: CallOptions = {},
): Promise<Res> {
  return rpcCallUnary(client, method, request, { deadlineMs: UNARY_DEADLINE_MS, ...options });
}

export function isServiceError(error: unknown): error is ServiceError {
  return (
    error instanceof Error &&
    typeof (error as Partial<ServiceError>).code === 'number' &&
    'details' in error
  );
}

/**
 * A gRPC failure as the one line the CLI prints: `NOT_FOUND: unknown class "x"`. An unreachable
 * coordinator also names the address that was tried.
 */
export function remoteError(error: unknown, address: string): Error {
  if (!isServiceError(error)) return error instanceof Error ? error : new Error(String(error));
  const details = (error.details || error.message)
    .split('\n')[0]!
    .replace(/Last error: Error: /, 'Last error: ')
    .replace(/\s*Resolution note:\s*$/, '')
    .trim();
  const where = error.code === status.UNAVAILABLE ? ` (coordinator ${address})` : '';
  const hint =
    error.code === status.UNAUTHENTICATED
      ? ' (pass --token or set LETHE_TOKEN, or a client certificate with --tls-cert/--tls-key)'
      : '';
  return new CliError(`${statusName(error.code)}: ${details}${where}${hint}`);
}

const TERMINAL: ReadonlySet<JobState> = new Set([
  JobState.JOB_STATE_SUCCEEDED,
  JobState.JOB_STATE_FAILED,
  JobState.JOB_STATE_CANCELLED,
]);

export function isTerminal(state: JobState): boolean {
  return TERMINAL.has(state);
}

/** `SUCCEEDED` for JOB_STATE_SUCCEEDED. */
export function jobStateName(state: JobState): string {
  return jobStateToJSON(state).replace(/^JOB_STATE_/, '');
}

/**
 * Watches a job until it reaches a terminal state and resolves with the job as of that event.
 * `onEvent` sees every event, the initial snapshot included. Ctrl-C stops watching (the job keeps
 * running on the coordinator) with a line saying so and exit code 130.
 */
export function watchJob(
  client: CoordinatorClient,
  jobId: string,
  onEvent: (event: JobEvent) => void,
): Promise<Job> {
  return new Promise<Job>((resolve, reject) => {
    const call = client.watchJob({ jobId, includeLogs: true });
    let settled = false;
    const finish = (result: { job: Job } | { error: unknown }): void => {
      if (settled) return;
      settled = true;
      process.off('SIGINT', interrupt);
      if ('job' in result) resolve(result.job);
      else reject(result.error);
      call.cancel();
    };
    const interrupt = (): void => {
      finish({
        error: new CliError(
          `stopped watching job ${jobId}; it keeps running on the coordinator (see npx lethe status)`,
          130,
        ),
      });
    };
    process.once('SIGINT', interrupt);
    call.on('data', (event: JobEvent) => {
      if (settled) return;
      onEvent(event);
      if (event.event?.$case === 'status' && isTerminal(event.event.value.state)) {
        const job = event.event.value.job;
        finish({ job: job ?? Job.fromPartial({ jobId, state: event.event.value.state }) });
      }
    });
    call.on('error', (error: unknown) => finish({ error }));
    call.on('end', () =>
      finish({
        error: new CliError(`the coordinator ended the stream of job ${jobId} before it finished`),
      }),
    );
  });
}

/**
 * Runs `work` with a client of the coordinator `target` (an address: plaintext, anonymous),
 * closes the client afterwards, and turns a gRPC failure into the CLI's one-line error
 * (`NOT_FOUND: ...`). Warns on stderr before a token goes over plaintext beyond this machine.
 */
export async function withCoordinator<T>(
  target: CoordinatorTarget | string,
  work: (client: CoordinatorClient) => Promise<T>,
): Promise<T> {
  const { address, connection } = typeof target === 'string' ? { address: target } : target;
  if (connection?.token && !connection.tls && !isLoopback(address)) {
    process.stderr.write(
      `warning: sending a bearer token to ${address} without TLS (add --tls-ca FILE or --tls)\n`,
    );
  }
  const client = connectCoordinator(address, connection);
  try {
    return await work(client);
  } catch (error) {
    throw remoteError(error, address);
  } finally {
    client.close();
  }
}

/** Prints a proto message as JSON on stdout, as its generated `toJSON` writes it. */
export function printMessage<T>(codec: { toJSON(message: T): unknown }, message: T): void {
  process.stdout.write(`${JSON.stringify(codec.toJSON(message), null, 2)}\n`);
}
