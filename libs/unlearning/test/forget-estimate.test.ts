import { trainingRecordSchema } from '@lethe/model';
import { describe, expect, it } from 'vitest';
import type { Manifest } from '@lethe/store';
import {
  estimateForget,
  forgetRateAttribute,
  lastForgetRate,
  measuredForgetRate,
} from '../src/forget-estimate';

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
    const work = { trainingSamples: 300, epochs: 2, expertsRetrained: 3, teacherSamples: 0 };
    const estimate = estimateForget(work, measured, training);
    expect(estimate).toMatchObject({ ...measured, trainingRate: 200, expertSampleWork: 1800 });
    expect(estimate.rate).toMatchObject({ source: 'training', retrainingRate: 200 });
    // 600 sample-steps at 200/s; after (1,200) + the 600 the memo lacks, at 600/s.
    expect(estimate.seconds!.retraining).toBeCloseTo(3);
    expect(estimate.seconds!.measurement).toBeCloseTo(3);
    expect(estimate.seconds!.total).toBeCloseTo(6);
    // A distillation teacher runs the 300 retraining samples once more, at 600/s.
    const taught = estimateForget({ ...work, teacherSamples: 300 }, measured, training);
    expect(taught.seconds!.retraining).toBeCloseTo(3.5);
  });

  it("splits a training-rate measurement across the forget's measurement threads", () => {
    const work = { trainingSamples: 300, epochs: 2, expertsRetrained: 3, teacherSamples: 300 };
    const one = estimateForget(work, measured, training);
    const two = estimateForget({ ...work, measureThreads: 2 }, measured, training);
    expect(two.seconds!.measurement).toBeCloseTo(one.seconds!.measurement / 2);
    // The teacher's pass runs in the job's own thread: retraining seconds do not change.
    expect(two.seconds!.retraining).toBeCloseTo(one.seconds!.retraining);
    // A measured forget rate was timed on its threads already.
    const last = measuredForgetRate(
      { requestId: 'r-1', model: 'tiny/4/2' },
      [{ images: 600, seconds: 6 }],
      { samples: 1500, seconds: 3 },
    )!;
    expect(
      estimateForget({ ...work, measureThreads: 2 }, measured, training, last).seconds!.measurement,
    ).toBeCloseTo(3.6);
  });

  it('gives no seconds for a model stored without epoch timings, only the work', () => {
    const work = { trainingSamples: 10, epochs: 1, expertsRetrained: 2, teacherSamples: 10 };
    const bare = trainingRecordSchema.parse({ mode: 'joint', dataset: 'cifar10:/data' });
    for (const record of [undefined, bare]) {
      const estimate = estimateForget(work, measured, record);
      expect(estimate.seconds).toBeUndefined();
      expect(estimate.trainingRate).toBeUndefined();
      expect(estimate.rate).toBeUndefined();
      expect(estimate.expertSampleWork).toBe(20);
    }
  });

  it("uses the last forget's measured rates over the training rate", () => {
    const work = { trainingSamples: 300, epochs: 2, expertsRetrained: 3, teacherSamples: 300 };
    const last = measuredForgetRate(
      { requestId: 'r-1', model: 'tiny/4/2' },
      [
        { images: 300, seconds: 2 },
        { images: 300, seconds: 4 },
      ],
      { samples: 1500, seconds: 3 },
    )!;
    expect(last).toMatchObject({ requestId: 'r-1', retrainingRate: 100, inferenceRate: 500 });
    const estimate = estimateForget(work, measured, training, last);
    expect(estimate.rate).toMatchObject({ source: 'forget', requestId: 'r-1' });
    // 600 sample-steps at 100/s and 300 teacher passes at 500/s; 1,800 inferences at 500/s.
    expect(estimate.seconds!.retraining).toBeCloseTo(6.6);
    expect(estimate.seconds!.measurement).toBeCloseTo(3.6);
    // The training rate is still reported, for reference.
    expect(estimate.trainingRate).toBe(200);
  });

  it('stores a rate per kind and method, for a model of the same shape only', () => {
    const manifest = (attributes: Manifest['attributes']): Manifest => ({
      schema: 1,
      revision: 3,
      updatedAt: '',
      objects: {},
      attributes,
    });
    const receipt = (seconds: number) => ({
      history: [{ images: 600, seconds }],
      metrics: {
        after: { seconds: 2, measuredOn: { trainForgotten: 100, trainRetained: 500, test: 400 } },
      },
    });
    const model = { config: { preset: 'tiny', experts: 4, topK: 2 } };
    const first = manifest(
      forgetRateAttribute(manifest({}), 'class:targeted', 'a', model, receipt(3)),
    );
    const both = manifest(forgetRateAttribute(first, 'samples:neggrad+', 'b', model, receipt(6)));
    expect(lastForgetRate(both, 'class:targeted', model.config)).toMatchObject({
      requestId: 'a',
      retrainingRate: 200,
      inferenceRate: 500,
    });
    expect(lastForgetRate(both, 'samples:neggrad+', model.config)?.retrainingRate).toBe(100);
    expect(lastForgetRate(both, 'samples:scrub', model.config)).toBeUndefined();
    // Another shape (more experts) does not inherit the rate.
    expect(lastForgetRate(both, 'class:targeted', { ...model.config, experts: 8 })).toBeUndefined();
    // A run without retraining epochs (mask) measures no rate and stores nothing.
    expect(
      forgetRateAttribute(both, 'class:mask', 'c', model, { ...receipt(1), history: [] }),
    ).toEqual({});
  });
});
