import { IntegrityError, type Manifest } from '@lethe/store';
import { describe, expect, it } from 'vitest';
import { readTrainingRecord, recordedTrainingRate } from '../src';

function manifestWith(training: unknown): Manifest {
  return {
    schema: 1,
    revision: 3,
    updatedAt: '2026-12-06T00:00:00.000Z',
    objects: {},
    attributes: training === undefined ? {} : { training: training as never },
  };
}

describe('readTrainingRecord', () => {
  it('reads a joint record, defaulting what earlier versions did not write', () => {
    const record = readTrainingRecord(manifestWith({ mode: 'joint', dataset: 'cifar10:/d' }));
    expect(record).toMatchObject({ mode: 'joint', dataset: 'cifar10:/d', limit: null, seed: 0 });
  });

  it('keeps fields it does not know, for newer writers', () => {
    const record = readTrainingRecord(
      manifestWith({ mode: 'sisa', dataset: 'x', seed: 4, future: { a: 1 } }),
    );
    expect(record?.['future']).toEqual({ a: 1 });
  });

  it('is undefined without a model, and an integrity error when malformed', () => {
    expect(readTrainingRecord(undefined)).toBeUndefined();
    expect(readTrainingRecord(manifestWith(undefined))).toBeUndefined();
    expect(() =>
      readTrainingRecord(manifestWith({ mode: 'joint', dataset: 'x', seed: 'zero' })),
    ).toThrow(IntegrityError);
    expect(() => readTrainingRecord(manifestWith({ mode: 'other', dataset: 'x' }))).toThrow(
      /malformed training record: mode/,
    );
  });

  it('gives the recorded training rate in images per second', () => {
    const record = readTrainingRecord(
      manifestWith({
        mode: 'joint',
        dataset: 'x',
        trainSize: 1000,
        history: [
          { epoch: 1, loss: 2, accuracy: 0.3, seconds: 4 },
          { epoch: 2, loss: 1.5, accuracy: 0.4, seconds: 6 },
        ],
      }),
    );
    expect(recordedTrainingRate(record)).toBe(200);
    expect(
      recordedTrainingRate(readTrainingRecord(manifestWith({ mode: 'joint', dataset: 'x' }))),
    ).toBeUndefined();
  });
});
