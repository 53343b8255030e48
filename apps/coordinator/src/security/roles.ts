import type { CoordinatorServer } from '@lethe/proto';
import type { Role } from '../config/auth-file';

const READ: readonly Role[] = ['admin', 'viewer'];
const CHANGE: readonly Role[] = ['admin'];

/**
 * The roles that may call each method of the public Coordinator service. Typed by the service,
 * so a new method does not compile until it is given its roles.
 */
export const COORDINATOR_METHOD_ROLES: Readonly<Record<keyof CoordinatorServer, readonly Role[]>> =
  {
    startTraining: CHANGE,
    submitForget: CHANGE,
    cancelJob: CHANGE,
    getJob: READ,
    watchJob: READ,
    getReceipt: READ,
    listReceipts: READ,
    evaluate: READ,
    predict: READ,
    listSamples: READ,
    listExperts: READ,
    listWorkers: READ,
  };
