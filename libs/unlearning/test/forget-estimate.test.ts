import { trainingRecordSchema } from '@lethe/model';
import { describe, expect, it } from 'vitest';
import { estimateForget } from '../src/forget-estimate';

// Trained at 200 images/s: 1,000 images, two epochs of 5 s each.
const training = trainingRecordSchema.parse({
  mode: 'joint',
  dataset: 'cifar10:/data',
  trainSize: 1000,
  history: [
    { epoch: 0, loss: 1, accuracy: 0.5, seconds: 5 },
    { epoch: 1, loss: 0.8, accuracy: 0.6, seconds: 5 },
  ],
});
const measured = { measuredSamples: 1200, measuredBeforeReused: 600 };

describe('estimateForget', () => {
  it('costs a retraining step as a training step and an inference pass as a third of one', () => {
    const work = { trainingSamples: 300, epochs: 2, expertsRetrained: 3, teacherPass: false };
    const estimate = estimateForget(work, measured, training);
    expect(estimate).toMatchObject({ ...measured, trainingRate: 200, expertSampleWork: 1800 });
    // 600 sample-steps at 200/s; after (1,200) + the 600 the memo lacks, at 600/s.
    expect(estimate.seconds!.retraining).toBeCloseTo(3);
    expect(estimate.seconds!.measurement).toBeCloseTo(3);
    expect(estimate.seconds!.total).toBeCloseTo(6);
    // A distillation teacher runs each retraining sample once more: 300 passes at 600/s.
    const taught = estimateForget({ ...work, teacherPass: true }, measured, training);
    expect(taught.seconds!.retraining).toBeCloseTo(3.5);
  });

  it('gives no seconds for a model stored without epoch timings, only the work', () => {
    const work = { trainingSamples: 10, epochs: 1, expertsRetrained: 2, teacherPass: true };
    const bare = trainingRecordSchema.parse({ mode: 'joint', dataset: 'cifar10:/data' });
    for (const record of [undefined, bare]) {
      const estimate = estimateForget(work, measured, record);
      expect(estimate.seconds).toBeUndefined();
      expect(estimate.trainingRate).toBeUndefined();
      expect(estimate.expertSampleWork).toBe(20);
    }
  });
});
