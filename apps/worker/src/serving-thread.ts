import { parentPort, workerData } from 'node:worker_threads';
import { initEngine } from '@lethe/engine';
import { openObjectStore } from '@lethe/store';
import { ExpertHost, HostError } from './expert-host';
import type { ServingRequest, ServingReply, ServingThreadData } from './serving-copy';

/**
 * The serving thread of a worker: its own TensorFlow.js engine and an ExpertHost holding the
 * serving copy of the experts, so that a Predict or an Evaluate Forward computes while the main
 * thread runs a training step instead of waiting for it to end (see serving-copy.ts).
 */
async function main(): Promise<void> {
  const port = parentPort!;
  const data = workerData as ServingThreadData;
  const reply = (message: ServingReply, transfer: ArrayBuffer[] = []): void =>
    port.postMessage(message, transfer);
  const engine = await initEngine({
    log: (message, fields) => reply({ kind: 'log', message, fields: fields ?? {} }),
  });
  const store = data.storeUrl === undefined ? undefined : await openObjectStore(data.storeUrl);
  const host = new ExpertHost({ maxExperts: data.maxExperts, ...(store ? { store } : {}) });

  const run = async (request: ServingRequest): Promise<unknown> => {
    switch (request.method) {
      case 'assignExperts':
        return host.assignExperts(request.model, request.assignments, request.replaceAll);
      case 'forward':
        return host.forward(request.input);
      case 'predict':
        return host.predict(request.expertId, request.images);
      case 'release':
        return host.release(request.input);
      case 'adoptDataset':
        host.adoptDataset(request.key, request.held);
        return undefined;
      case 'dropDataset':
        host.release({ expertIds: [], datasetKeys: [request.key], all: false });
        return undefined;
    }
  };
  port.on('message', (request: ServingRequest) => {
    void run(request).then(
      (value) => {
        const logits = value as { values?: unknown } | undefined;
        const transfer =
          logits?.values instanceof Float32Array ? [logits.values.buffer as ArrayBuffer] : [];
        reply({ kind: 'result', id: request.id, value }, transfer);
      },
      (error: unknown) =>
        reply({
          kind: 'error',
          id: request.id,
          message: error instanceof Error ? error.message : String(error),
          ...(error instanceof HostError ? { code: error.code } : {}),
        }),
    );
  });
  reply({ kind: 'ready', engine: `${engine.engine}/${engine.backend}` });
}

main().catch((error: unknown) => {
  parentPort?.postMessage({
    kind: 'failed',
    message: error instanceof Error ? error.message : String(error),
  } satisfies ServingReply);
});
