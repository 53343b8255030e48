// Child process for crash.test.ts: writes and publishes as fast as it can until it is killed.
// Prints "ready" once started and "published <revision>" after each update returns, so the
// parent knows which revisions were acknowledged before the kill.
import { randomBytes, randomInt } from 'node:crypto';
import { LocalDirStore, ManifestStore, putContent } from '../src/index.js';

const MiB = 1024 * 1024;

async function main(root: string): Promise<void> {
  const store = new LocalDirStore(root);
  const manifests = new ManifestStore(store);
  let revision = (await manifests.read())?.revision ?? 0;
  process.stdout.write('ready\n');
  for (let step = 0; ; step++) {
    // Most steps only republish the manifest, so that kills often land inside update() and
    // not only inside multi-MB writes.
    const heavy = step % 3 === 0;
    const expert = heavy
      ? await putContent(store, randomBytes(randomInt(1 * MiB, 4 * MiB)), {
          kind: 'expert',
          metadata: { step: String(step) },
        })
      : undefined;
    const router = await putContent(store, randomBytes(randomInt(1, 64 * 1024)), {
      kind: 'router',
    });
    // A mutable key, overwritten in place, to exercise sidecar consistency after a kill.
    await store.put('scratch/latest', randomBytes(randomInt(1, heavy ? MiB : 64 * 1024)), {
      metadata: { step: String(step) },
    });
    const published = await manifests.update(
      (m) => {
        if (expert !== undefined) m.objects[`expert/${step % 4}`] = expert;
        m.objects['router'] = router;
        m.attributes['step'] = step;
      },
      { expectRevision: revision },
    );
    revision = published.revision;
    process.stdout.write(`published ${revision}\n`);
  }
}

const root = process.argv[2];
if (root === undefined) throw new Error('usage: crash-writer <store root>');
main(root).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
