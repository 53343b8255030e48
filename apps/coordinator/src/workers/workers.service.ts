import { credentials } from '@grpc/grpc-js';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { type TlsMaterial, tlsChannelCredentials } from '@lethe/rpc';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config/coordinator-config';
import { MetricsService } from '../metrics/metrics.service';
import { COORDINATOR_CONFIG, LOGGER, TLS_MATERIAL } from '../config/tokens';
import { ExpertPlacement } from './expert-placement';
import { WorkerRegistry } from './worker-registry';

/** The registered workers and where the current model's experts live on them. */
@Injectable()
export class WorkersService implements OnApplicationShutdown {
  readonly registry: WorkerRegistry;
  readonly placement: ExpertPlacement;

  constructor(
    @Inject(COORDINATOR_CONFIG) config: CoordinatorConfig,
    @Inject(LOGGER) log: Logger,
    @Inject(TLS_MATERIAL) tls: TlsMaterial | null,
    @Inject(MetricsService) metrics: MetricsService,
  ) {
    // With TLS, workers are verified against the cluster CA and see this coordinator's
    // certificate as its client certificate (mutual TLS).
    this.registry = new WorkerRegistry(
      config,
      log.child({ component: 'registry' }),
      tls ? tlsChannelCredentials(tls) : credentials.createInsecure(),
    );
    this.placement = new ExpertPlacement(this.registry, log.child({ component: 'placement' }));
    metrics.watchWorkers(() => this.registry.all().map((w) => w.state));
  }

  onApplicationShutdown(): void {
    this.registry.close();
  }
}
