import { type DynamicModule, Module } from '@nestjs/common';
import { openObjectStore } from '@lethe/store';
import type { Logger } from 'pino';
import { CoordinatorApi } from './api/coordinator-api';
import { RegistryApi } from './api/registry-api';
import { AuditService } from './audit/audit.service';
import { ClusterService } from './services/cluster.service';
import { type CoordinatorConfig, coordinatorTls } from './config/coordinator-config';
import { EngineService } from './engine/engine.service';
import { ForgettingService } from './services/forgetting.service';
import { GrpcServerService } from './grpc/grpc-server.service';
import { JobsService } from './jobs/jobs.service';
import { MetricsService } from './metrics/metrics.service';
import { ModelStateService } from './model/model-state.service';
import { recoverStore } from './model/store-recovery';
import { AuthService } from './security/auth.service';
import { ServingService } from './services/serving.service';
import { COORDINATOR_CONFIG, LOGGER, OBJECT_STORE, TLS_MATERIAL } from './config/tokens';
import { TrainingService } from './services/training.service';
import { WorkersService } from './workers/workers.service';

/** The coordinator application: configuration, store and logger in; gRPC services out. */
// A Nest dynamic module is a class with a static factory, by Nest's design.
@Module({})
// eslint-disable-next-line @typescript-eslint/no-extraneous-class
export class CoordinatorModule {
  static forRoot(config: CoordinatorConfig, logger: Logger): DynamicModule {
    return {
      module: CoordinatorModule,
      providers: [
        { provide: COORDINATOR_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        {
          provide: OBJECT_STORE,
          useFactory: async () => recoverStore(await openObjectStore(config.store), logger),
        },
        { provide: TLS_MATERIAL, useFactory: () => coordinatorTls(config) ?? null },
        MetricsService,
        AuthService,
        AuditService,
        WorkersService,
        ModelStateService,
        EngineService,
        JobsService,
        TrainingService,
        ForgettingService,
        ServingService,
        ClusterService,
        CoordinatorApi,
        RegistryApi,
        GrpcServerService,
      ],
      exports: [GrpcServerService, JobsService, WorkersService, AuditService, MetricsService],
    };
  }
}
