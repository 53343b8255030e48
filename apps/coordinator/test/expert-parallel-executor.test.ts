import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '@lethe/engine';
import { type MoEConfig, MoEModel } from '@lethe/model';
import { MemoryStore } from '@lethe/store';
import { beforeAll, describe, expect, it } from 'vitest';
import { STEP_IDS_PER_JOB } from '../src/contract/job-context';
import { ExpertParallelExecutor } from '../src/runners/expert-parallel-executor';
import type { ExpertSession } from '../src/workers/expert-session';

beforeAll(() => initEngine({ engine: 'wasm', log: () => undefined }));

const CONFIG: MoEConfig = {
  preset: 'tiny',
  experts: 4,
  topK: 2,
  numClasses: 3,
  inputShape: [8, 8, 3],
  routerNoise: 1,
  balanceWeight: 0.01,
  seed: 7,
};

/** Step `s`'s batch: the class is which channel is bright. */
function batch(s: number, n = 12) {
  const x = new Float32Array(n * 192);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = (i + s) % 3;
    for (let j = 0; j < 192; j++)
      x[i * 192 + j] = (j % 3 === y[i] ? 1 : 0) + Math.sin(i + j + s) / 3;
  }
  const indices = Int32Array.from({ length: n }, (_, i) => s * n + i);
  return { x, y, size: n, indices, positions: indices };
}

/** The router's weights after 3 steps run by the executor (jobs with `stepBase`) or in-process. */
async function train(stepBase: number | 'in-process'): Promise<number[]> {
  const model = new MoEModel(CONFIG);
  // No remote experts: every expert steps here, so the session is never called.
  const session = {
    call: () => Promise.reject(new Error('no expert is remote in this test')),
  } as unknown as ExpertSession;
  const executor = new ExpertParallelExecutor(session, new MemoryStore(), {
    datasetKey: 'train',
    stepBase: stepBase === 'in-process' ? 0 : stepBase,
    remote: [],
  });
  try {
    for (let s = 0; s < 3; s++) {
      const b = batch(s);
      const x = tf.tensor4d(b.x, [b.size, 8, 8, 3]);
      const y = tf.tensor1d(b.y, 'int32');
      const options = { learningRate: 0.01 };
      if (stepBase === 'in-process') model.trainStep(x, y, options);
      else await executor.step(model, { batch: b, x, y, options, epoch: 0, globalStep: s });
      tf.dispose([x, y]);
    }
    return model
      .part('router')
      .params.all()
      .flatMap((p) => Array.from(p.variable.dataSync()));
  } finally {
    model.dispose();
  }
}

describe('ExpertParallelExecutor', () => {
  it('draws router noise from the seed and the step, not the job: one request, one model', async () => {
    const first = await train(1 * STEP_IDS_PER_JOB);
    expect(await train(42 * STEP_IDS_PER_JOB)).toEqual(first);
    // And as training in one process draws it.
    expect(await train('in-process')).toEqual(first);
  });
});
