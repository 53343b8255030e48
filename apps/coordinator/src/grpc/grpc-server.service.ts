import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { CoordinatorService, RegistryService } from '@lethe/proto';
import { type RunningServer, startGrpcServer } from '@lethe/rpc';
import type { Logger } from 'pino';
import { CoordinatorApi } from '../api/coordinator-api';
import { RegistryApi } from '../api/registry-api';
import type { CoordinatorConfig } from '../config/coordinator-config';
import { COORDINATOR_CONFIG, LOGGER } from '../tokens';

/**
 * Serves the public Coordinator service and the internal Registry on one port, with standard
 * health checking and server reflection. Logs `coordinator listening` with the bound address
 * once serving (`lethe up` and tests wait for that line).
 */
@Injectable()
export class GrpcServerService implements OnApplicationBootstrap, OnApplicationShutdown {
  private server: RunningServer | undefined;

  constructor(
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly log: Logger,
    @Inject(CoordinatorApi) private readonly coordinator: CoordinatorApi,
    @Inject(RegistryApi) private readonly registry: RegistryApi,
  ) {}

  get address(): string | undefined {
    return this.server?.address;
  }

  async onApplicationBootstrap(): Promise<void> {
    this.server = await startGrpcServer({
      address: `${this.config.host}:${this.config.port}`,
      services: [
        { definition: CoordinatorService, implementation: this.coordinator.implementation() },
        { definition: RegistryService, implementation: this.registry.implementation() },
      ],
      healthServices: ['lethe.v1.Coordinator', 'lethe.v1.Registry'],
    });
    this.log.info({ address: this.server.address }, 'coordinator listening');
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server?.shutdown(5_000);
  }
}
