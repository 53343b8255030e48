import { parentPort, workerData } from 'node:worker_threads';
import { initEngine } from '@lethe/engine';
import { openObjectStore } from '@lethe/store';
import { ExpertHost, HostError } from './expert-host';
import type { HostReply, HostRequest, HostThreadData } from './host-thread';

/**
 * A worker's host thread (host-thread.ts): its own TensorFlow.js engine and one ExpertHost, the
 * training or the serving copy, answering the main thread's calls in order.
 */
async function main(): Promise<void> {
  const port = parentPort!;
  const data = workerData as HostThreadData;
  const engine = await initEngine({
    log: (message, fields) =>
      port.postMessage({ kind: 'log', message, fields: fields ?? {} } satisfies HostReply),
  });
  const store = data.storeUrl === undefined ? undefined : await openObjectStore(data.storeUrl);
  const host = new ExpertHost({ maxExperts: data.maxExperts, ...(store ? { store } : {}) });

  const run = (request: HostRequest): unknown => {
    switch (request.method) {
      case 'assignExperts':
        return host.assignExperts(...request.args);
      case 'loadDataset':
        return host.loadDataset(...request.args);
      case 'forward':
        return host.forward(...request.args);
      case 'backward':
        return host.backward(...request.args);
      case 'predict':
        return host.predict(...request.args);
      case 'checkpoint':
        return host.checkpoint(...request.args);
      case 'release':
        return host.release(...request.args);
      case 'sharedDataset':
        return host.sharedDataset(...request.args);
      case 'adoptDataset':
        return host.adoptDataset(...request.args);
    }
  };
  port.on('message', (request: HostRequest) => {
    void (async () => {
      try {
        const value = await run(request);
        const logits = (value as { values?: unknown } | undefined)?.values;
        // Logits are fresh arrays of their own: moved, not copied.
        const transfer = logits instanceof Float32Array ? [logits.buffer as ArrayBuffer] : [];
        port.postMessage(
          { kind: 'result', id: request.id, value, load: host.load() } satisfies HostReply,
          transfer,
        );
      } catch (error) {
        port.postMessage({
          kind: 'error',
          id: request.id,
          message: error instanceof Error ? error.message : String(error),
          ...(error instanceof HostError ? { code: error.code } : {}),
          load: host.load(),
        } satisfies HostReply);
      }
    })();
  });
  port.postMessage({ kind: 'ready', engine, load: host.load() } satisfies HostReply);
}

main().catch((error: unknown) => {
  parentPort?.postMessage({
    kind: 'failed',
    message: error instanceof Error ? error.message : String(error),
  } satisfies HostReply);
});
