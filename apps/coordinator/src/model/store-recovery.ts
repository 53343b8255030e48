import { LocalDirStore, ManifestStore, type ObjectStore } from '@lethe/store';
import type { Logger } from 'pino';

/**
 * What a crash can leave behind, put right before the coordinator serves: temp files of
 * writers that died mid-put (a local store; S3 never shows a partial object), and a manifest
 * pointer that is damaged or behind the newest revision. Reads would work around the pointer
 * anyway; rewriting it here means every process sharing the store sees the sound one.
 */
export async function recoverStore(store: ObjectStore, log: Logger): Promise<ObjectStore> {
  if (store instanceof LocalDirStore) {
    // The embedded store is this machine's directory, so a writer's process id says whether
    // it is still running.
    const removed = await store.sweepTemp({ deadWriters: true });
    if (removed.length > 0) {
      log.warn({ files: removed.slice(0, 20), count: removed.length }, 'stray temp files removed');
    }
  }
  try {
    const repair = await new ManifestStore(store).repair();
    if (repair) {
      log.warn(
        { problem: repair.problem, from: repair.from, revision: repair.to },
        `manifest pointer was ${repair.problem}: rebuilt from revision ${repair.to}`,
      );
    }
  } catch (error) {
    // Serving answers DATA_LOSS for it; the coordinator still starts, so it can be inspected.
    log.error({ err: error }, 'the manifest could not be repaired');
  }
  return store;
}
