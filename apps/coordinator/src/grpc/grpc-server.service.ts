import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import {
  CoordinatorService,
  HEALTH_DESCRIPTOR_SET,
  LETHE_DESCRIPTOR_SET,
  REFLECTION_DESCRIPTOR_SET,
  RegistryService,
  type SubmitForgetRequest,
} from '@lethe/proto';
import {
  type RunningServer,
  startGrpcServer,
  type TlsMaterial,
  tlsServerCredentials,
} from '@lethe/rpc';
import type { Logger } from 'pino';
import { CoordinatorApi } from '../api/coordinator-api';
import { RegistryApi } from '../api/registry-api';
import { AuditService } from '../audit/audit.service';
import type { CoordinatorConfig } from '../config/coordinator-config';
import { AuthService } from '../security/auth.service';
import { COORDINATOR_CONFIG, LOGGER, TLS_MATERIAL } from '../config/tokens';

/**
 * Serves the public Coordinator service and the internal Registry on one port, with standard
 * health checking and server reflection. Logs `coordinator listening` with the bound address
 * once serving (`lethe up` and tests wait for that line).
 *
 * With TLS the port asks every client for a certificate without requiring one: the Registry
 * accepts workers' certificates only, the public API takes tokens or certificates (AuthService).
 * Without TLS or without an auth file it warns, once, at start.
 */
@Injectable()
export class GrpcServerService
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private server: RunningServer | undefined;

  constructor(
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly log: Logger,
    @Inject(CoordinatorApi) private readonly coordinator: CoordinatorApi,
    @Inject(RegistryApi) private readonly registry: RegistryApi,
    @Inject(AuthService) private readonly auth: AuthService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(TLS_MATERIAL) private readonly tls: TlsMaterial | null,
  ) {}

  get address(): string | undefined {
    return this.server?.address;
  }

  async onApplicationBootstrap(): Promise<void> {
    const api = this.auth.protectApi(this.coordinator.implementation(), (refusal) =>
      refusal.method === 'submitForget'
        ? this.audit.refusedSubmit(
            (refusal.call as unknown as { request: SubmitForgetRequest }).request,
            { identity: refusal.identity, peer: refusal.call.getPeer() },
            refusal.error,
          )
        : undefined,
    );
    const registry = this.registry.implementation();
    this.server = await startGrpcServer({
      address: `${this.config.host}:${this.config.port}`,
      services: [
        { definition: CoordinatorService, implementation: api },
        {
          definition: RegistryService,
          implementation: this.tls ? this.auth.protectRegistry(registry) : registry,
        },
      ],
      healthServices: ['lethe.v1.Coordinator', 'lethe.v1.Registry'],
      reflection: [LETHE_DESCRIPTOR_SET, HEALTH_DESCRIPTOR_SET, REFLECTION_DESCRIPTOR_SET],
      ...(this.tls ? { credentials: tlsServerCredentials(this.tls, 'request') } : {}),
      log: this.log,
    });
    this.warnIfInsecure();
    this.log.info(
      {
        address: this.server.address,
        tls: this.tls !== null,
        auth: this.auth.policy ? this.auth.policy.size : false,
      },
      'coordinator listening',
    );
  }

  private warnIfInsecure(): void {
    if (!this.tls) {
      this.log.warn(
        { address: this.server?.address },
        'INSECURE: no TLS (--tls-cert, --tls-key, --tls-ca): the API and the Registry are plaintext, and any process that reaches this port can register as a worker',
      );
    }
    if (!this.auth.policy) {
      this.log.warn(
        { address: this.server?.address },
        'INSECURE: no --auth-file: the public API is open, anyone who can connect may train and forget',
      );
    } else if (!this.tls) {
      this.log.warn('bearer tokens travel in clear text without TLS');
    }
  }

  /**
   * Before anything else stops (engine threads, the job queue, SQLite): health NOT_SERVING, no
   * new calls, WatchJob streams ended with UNAVAILABLE (clients watch again after the restart),
   * and the calls in flight finish — within the shutdown grace, less a reserve for the rest.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.coordinator.endStreams();
    const reserveMs = Math.min(2_000, this.config.shutdownGraceMs / 4);
    await this.server?.shutdown(this.config.shutdownGraceMs - reserveMs);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server?.shutdown(0);
  }
}
