export type { ObjectInfo, ObjectStore, PutOptions } from './object-store.js';
export {
  ConflictError,
  IntegrityError,
  InvalidKeyError,
  InvalidMetadataError,
  NotFoundError,
  StoreError,
} from './errors.js';
export { assertValidKey, isValidKey } from './keys.js';
export { sha256Hex } from './hash.js';
export { contentKey, getVerified, putContent, verifyRef } from './content.js';
export type { ObjectRef, PutContentOptions } from './content.js';
export { LocalDirStore } from './local-dir-store.js';
export type { SweepTempOptions } from './local-dir-store.js';
export { MemoryStore } from './memory-store.js';
export { S3ObjectStore } from './s3-object-store.js';
export type { ConditionalPutMode, S3ObjectStoreConfig } from './s3-object-store.js';
export { openObjectStore, parseObjectStoreUrl } from './open-object-store.js';
export type { ObjectStoreLocation, StoreEnv } from './open-object-store.js';
export { ManifestStore } from './manifest.js';
export type {
  JsonValue,
  Manifest,
  ManifestMutator,
  ManifestRevisionInfo,
  ManifestRepair,
  ManifestStoreOptions,
  ManifestUpdateOptions,
} from './manifest.js';
