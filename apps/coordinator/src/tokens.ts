/** Injection tokens of the coordinator's providers that are not classes. */
export const COORDINATOR_CONFIG = Symbol('COORDINATOR_CONFIG');
export const LOGGER = Symbol('LOGGER');
export const OBJECT_STORE = Symbol('OBJECT_STORE');
/** The coordinator's TLS certificate, key and cluster CA (TlsMaterial), or null: plaintext. */
export const TLS_MATERIAL = Symbol('TLS_MATERIAL');
