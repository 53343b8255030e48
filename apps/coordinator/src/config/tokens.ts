/** Injection tokens of the coordinator's providers that are not classes. */
export const COORDINATOR_CONFIG = Symbol('COORDINATOR_CONFIG');
export const LOGGER = Symbol('LOGGER');
export const OBJECT_STORE = Symbol('OBJECT_STORE');
/** The coordinator's TLS certificate, key and cluster CA (TlsMaterial), or null: plaintext. */
export const TLS_MATERIAL = Symbol('TLS_MATERIAL');
/** The clock the forget window is measured on (libs/sisa ForgetClock); the system clock if unset. */
export const FORGET_CLOCK = Symbol('FORGET_CLOCK');
