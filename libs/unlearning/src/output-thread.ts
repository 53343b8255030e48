import { parentPort, type Transferable, workerData } from 'node:worker_threads';
import { initEngine } from '@lethe/engine';
import { deserializeParameters, MoEModel } from '@lethe/model';
import { runModel } from './model-outputs';
import type { OutputThreadReply, OutputThreadTask } from './output-threads';

// One measurement thread (see output-threads.ts): rebuilds the model, runs it over its samples,
// posts the outputs back and ends.
async function main(task: OutputThreadTask): Promise<OutputThreadReply> {
  await initEngine({ engine: task.engine, log: () => undefined });
  const model = new MoEModel(task.config);
  try {
    MoEModel.parts(task.config.experts).forEach((part, i) =>
      deserializeParameters(model.part(part).params, task.parts[i]!),
    );
    const { numClasses: classes, topK } = task.config;
    const outputs = task.datasets.map((ds) => {
      const probs = new Float32Array(ds.size * classes);
      const chosen = new Int32Array(ds.size * topK);
      const all = Int32Array.from({ length: ds.size }, (_, i) => i);
      runModel(model, ds, task.normalise, all, undefined, (p, batchProbs, batchChosen, row) => {
        probs.set(batchProbs.subarray(row * classes, (row + 1) * classes), p * classes);
        chosen.set(batchChosen.subarray(row * topK, (row + 1) * topK), p * topK);
      });
      return { probs, chosen };
    });
    return { outputs };
  } finally {
    model.dispose();
  }
}

main(workerData as OutputThreadTask).then(
  (reply) => {
    // The arrays were made here with buffers of their own: moved, not copied.
    const transfer: Transferable[] =
      'outputs' in reply
        ? reply.outputs.flatMap((o) => [
            o.probs.buffer as ArrayBuffer,
            o.chosen.buffer as ArrayBuffer,
          ])
        : [];
    parentPort!.postMessage(reply, transfer);
  },
  (error: unknown) =>
    parentPort!.postMessage({ error: error instanceof Error ? error.message : String(error) }),
);
