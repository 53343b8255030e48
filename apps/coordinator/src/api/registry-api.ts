import { Inject, Injectable } from '@nestjs/common';
import type { RegistryServer } from '@lethe/proto';
import { unaryHandler } from '@lethe/rpc';
import type { Logger } from 'pino';
import { LOGGER } from '../config/tokens';
import { WorkersService } from '../workers/workers.service';

/** The internal Registry service workers call to register, send heartbeats and leave. */
@Injectable()
export class RegistryApi {
  constructor(
    @Inject(WorkersService) private readonly workers: WorkersService,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  implementation(): RegistryServer {
    const { registry } = this.workers;
    const log = this.log.child({ component: 'registry-api' });
    return {
      register: unaryHandler(async (request) => registry.register(request), log),
      heartbeat: unaryHandler(async (request) => registry.heartbeat(request), log),
      deregister: unaryHandler(async (request) => registry.deregister(request), log),
    };
  }
}
