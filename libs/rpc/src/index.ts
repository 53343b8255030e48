/**
 * @lethe/rpc — small gRPC helpers shared by the coordinator, the workers and the CLI's client:
 *
 * - RpcError and one factory per status code (`notFound('…')`): what handlers throw.
 * - unaryHandler / serverStreamHandler: async handlers as grpc-js handlers, errors mapped to
 *   status codes (RpcError → its code; anything else → INTERNAL, logged).
 * - startGrpcServer: a grpc-js server with the standard health service and server reflection;
 *   reflectServer: the client side, as generic tools do it (files into a descriptor pool,
 *   methods called by name).
 * - callUnary: a promise around a ts-proto client method with per-attempt deadlines and retries
 *   with backoff on UNAVAILABLE / DEADLINE_EXCEEDED.
 * - TLS: readTlsMaterial (checked PEM files), tlsServerCredentials (client certificates none,
 *   requested or required), tlsChannelCredentials, peerCertificate (a call's verified client
 *   certificate).
 * - Access: guardService (a check before every method of a service), authorizeService (roles
 *   per method; UNAUTHENTICATED / PERMISSION_DENIED), bearerToken, callerOf,
 *   bearerTokenInterceptor (the client side).
 */
export {
  RpcError,
  aborted,
  alreadyExists,
  cancelled,
  dataLoss,
  deadlineExceeded,
  failedPrecondition,
  internal,
  invalidArgument,
  notFound,
  permissionDenied,
  resourceExhausted,
  statusName,
  unauthenticated,
  unavailable,
  unimplemented,
} from './errors';
export { type RpcLogger, serverStreamHandler, unaryHandler } from './handlers';
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  type GrpcServiceBinding,
  type RunningServer,
  type StartServerOptions,
  splitHostPort,
  startGrpcServer,
} from './server';
export {
  backoffDelay,
  bearerTokenInterceptor,
  type CallOptions,
  callUnary,
  isRetryable,
  serviceError,
  type UnaryMethod,
} from './client';
export { addReflection, splitDescriptorSet } from './reflection';
export {
  callByName,
  type ReflectedServer,
  reflectServer,
  strictPoolProblems,
} from './reflection-client';
export {
  type AuthorizeOptions,
  authorizeService,
  bearerToken,
  type CallGuard,
  callerOf,
  guardService,
  type Identity,
  type Refusal,
} from './auth';
export {
  type CallInfo,
  type ClientCertificates,
  type PeerCertificate,
  peerCertificate,
  readTlsMaterial,
  TlsFileError,
  type TlsFiles,
  type TlsMaterial,
  tlsChannelCredentials,
  tlsServerCredentials,
  tlsServerName,
} from './tls';
export { type MetricsEndpoint, type ScrapeSource, serveMetrics } from './metrics-endpoint';
