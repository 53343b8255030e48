import { Inject, Injectable } from '@nestjs/common';
import {
  type CoordinatorServer,
  CoordinatorService,
  type RegistryServer,
  RegistryService,
} from '@lethe/proto';
import {
  authorizeService,
  type CallInfo,
  guardService,
  peerCertificate,
  permissionDenied,
  type Refusal,
  unauthenticated,
} from '@lethe/rpc';
import type { Logger } from 'pino';
import type { CoordinatorConfig } from '../config/coordinator-config';
import { COORDINATOR_CONFIG, LOGGER } from '../config/tokens';
import { type AuthPolicy, loadAuthFile } from '../config/auth-file';
import { COORDINATOR_METHOD_ROLES } from './roles';

/**
 * Access to the coordinator's services. The public API: with an auth file, every call needs a
 * bearer token or a client certificate the file names, with a role the method allows (see
 * roles.ts); without one it is open. The internal Registry (with TLS): workers only, i.e. a client
 * certificate signed by the cluster CA that is not an API user's.
 */
@Injectable()
export class AuthService {
  readonly policy: AuthPolicy | undefined;
  private readonly log: Logger;

  constructor(@Inject(COORDINATOR_CONFIG) config: CoordinatorConfig, @Inject(LOGGER) log: Logger) {
    this.log = log.child({ component: 'auth' });
    this.policy = config.authFile === undefined ? undefined : loadAuthFile(config.authFile);
  }

  /** The public API behind the role check; as it is without an auth file. */
  protectApi(
    implementation: CoordinatorServer,
    onRefused?: (refusal: Refusal) => void | Promise<void>,
  ): CoordinatorServer {
    const policy = this.policy;
    if (!policy) return implementation;
    return authorizeService(CoordinatorService, implementation, {
      authenticate: (call) => policy.authenticate(call),
      roles: COORDINATOR_METHOD_ROLES,
      ...(onRefused ? { onRefused } : {}),
      log: this.log,
    });
  }

  /** The Registry behind the worker certificate check (use with mutual TLS). */
  protectRegistry(implementation: RegistryServer): RegistryServer {
    return guardService(
      RegistryService,
      implementation,
      (call) => this.checkWorker(call),
      this.log,
    );
  }

  /** Throws unless the caller presented a worker's certificate from the cluster CA. */
  checkWorker(call: CallInfo): void {
    const certificate = peerCertificate(call);
    if (!certificate) {
      this.log.warn(
        { peer: call.getPeer(), method: call.getPath() },
        'registry call without a client certificate refused',
      );
      throw unauthenticated(
        'the Registry takes workers only: connect with a client certificate signed by the cluster CA',
      );
    }
    const role = this.policy?.certificateRole(certificate.commonName);
    if (role !== undefined) {
      this.log.warn(
        { peer: call.getPeer(), method: call.getPath(), cn: certificate.commonName },
        "registry call with an API user's certificate refused",
      );
      throw permissionDenied(
        `certificate CN=${certificate.commonName} belongs to an API user (role ${role}), not a worker`,
      );
    }
  }
}
