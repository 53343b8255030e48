import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config/coordinator-config';
import { COORDINATOR_CONFIG, LOGGER } from '../tokens';
import { ExpertPlacement } from './expert-placement';
import { WorkerRegistry } from './worker-registry';

/** The registered workers and where the current model's experts live on them. */
@Injectable()
export class WorkersService implements OnApplicationShutdown {
  readonly registry: WorkerRegistry;
  readonly placement: ExpertPlacement;

  constructor(@Inject(COORDINATOR_CONFIG) config: CoordinatorConfig, @Inject(LOGGER) log: Logger) {
    this.registry = new WorkerRegistry(config, log.child({ component: 'registry' }));
    this.placement = new ExpertPlacement(this.registry, log.child({ component: 'placement' }));
  }

  onApplicationShutdown(): void {
    this.registry.close();
  }
}
