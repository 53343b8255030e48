import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { RpcLogger } from './handlers';
import { addReflection } from './reflection';

export interface GrpcServiceBinding {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface StartServerOptions {
  /** host:port; port 0 picks a free one. */
  address: string;
  services: GrpcServiceBinding[];
  /**
   * Fully-qualified service names reported SERVING by the standard gRPC health service (plus ""
   * for the server overall).
   */
  healthServices: string[];
  /** Default: insecure. */
  credentials?: ServerCredentials;
  /** Max message size in bytes both ways (default 64 MiB). */
  maxMessageBytes?: number;
  /**
   * Compiled FileDescriptorSets (e.g. @lethe/proto's LETHE_DESCRIPTOR_SET, HEALTH_… and
   * REFLECTION_…) that server reflection serves for the services above and health; without
   * them the server has no reflection.
   */
  reflection?: readonly Uint8Array[];
  log?: RpcLogger;
}

export interface RunningServer {
  server: Server;
  port: number;
  /** host:actualPort */
  address: string;
  /** Reports `service` SERVING or NOT_SERVING through the health service. */
  setServing(service: string, serving: boolean): void;
  /**
   * Graceful: marks everything NOT_SERVING, stops accepting calls and waits for those in flight
   * (tryShutdown), then cancels whatever still runs after `graceMs` (forceShutdown). Default
   * grace 5 s. Calling it again returns the same promise.
   */
  shutdown(graceMs?: number): Promise<void>;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const DEFAULT_GRACE_MS = 5_000;

/** Splits `host:port` (`[v6]:port` too); throws on anything else. */
export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65_535) throw new Error(`address must be host:port, got '${address}'`);
  return { host: m[1]!, port };
}

/**
 * Starts a grpc-js server with the given services, the standard health service
 * (grpc.health.v1.Health, from grpc-health-check) and, given descriptor sets, server reflection
 * (v1 and v1alpha) of exactly the services it serves.
 */
export async function startGrpcServer(options: StartServerOptions): Promise<RunningServer> {
  const { host } = splitHostPort(options.address);
  const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const server = new Server({
    'grpc.max_receive_message_length': maxBytes,
    'grpc.max_send_message_length': maxBytes,
  });
  for (const { definition, implementation } of options.services) {
    server.addService(definition, implementation);
  }

  const names = ['', ...options.healthServices.filter((s) => s !== '')];
  const health = new HealthImplementation(
    Object.fromEntries(names.map((name) => [name, 'SERVING' as const])),
  );
  health.addToServer(server);

  if (options.reflection) {
    // A method's path is /<package>.<Service>/<Method>: the services this port serves.
    const served = options.services.map(
      ({ definition }) => Object.values(definition)[0]?.path.split('/')[1] ?? '',
    );
    addReflection(server, options.reflection, [...served, 'grpc.health.v1.Health']);
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      options.address,
      options.credentials ?? ServerCredentials.createInsecure(),
      (error, boundPort) => (error ? reject(error) : resolve(boundPort)),
    );
  });

  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = DEFAULT_GRACE_MS): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      for (const name of names) health.setStatus(name, 'NOT_SERVING');
      const force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, graceMs);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    return stopping;
  };

  return {
    server,
    port,
    address: `${host}:${port}`,
    setServing(service, serving) {
      if (!names.includes(service)) names.push(service);
      health.setStatus(service, serving ? 'SERVING' : 'NOT_SERVING');
    },
    shutdown,
  };
}
