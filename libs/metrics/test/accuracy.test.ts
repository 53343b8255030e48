import { describe, expect, it } from 'vitest';
import {
  MetricsError,
  accuracy,
  confusionMatrix,
  forgetReport,
  perClassAccuracy,
} from '../src/index';

// Hand-checked: forgotten training samples are rows 4–6 (class 2), predicted 2, 0, 2.
const train = {
  label: [0, 0, 1, 1, 2, 2, 2, 0],
  pred: [0, 1, 1, 1, 2, 0, 2, 0],
};
const test = {
  label: [0, 1, 2, 2, 1],
  pred: [0, 0, 2, 1, 1],
};

describe('accuracy, confusionMatrix, perClassAccuracy', () => {
  it('computes percentages', () => {
    expect(accuracy([0, 1, 2, 3], [0, 1, 0, 0])).toBe(50);
    expect(accuracy(Int32Array.from([1]), Int32Array.from([1]))).toBe(100);
  });

  it('counts [true][predicted]', () => {
    expect(confusionMatrix(test.pred, test.label)).toEqual([
      [1, 0, 0],
      [1, 1, 0],
      [0, 1, 1],
    ]);
  });

  it('gives NaN for a class with no samples', () => {
    const pc = perClassAccuracy(test.pred, test.label, 4);
    expect(pc.map((c) => c.accuracy)).toEqual([100, 50, 50, Number.NaN]);
    expect(pc[1]).toEqual({ total: 2, correct: 1, accuracy: 50 });
  });

  it('rejects bad input', () => {
    expect(() => accuracy([], [])).toThrow(/empty/);
    expect(() => accuracy([1, 2], [1])).toThrow(/length mismatch/);
    expect(() => accuracy([0.5], [0])).toThrow(/not a class id/);
    expect(() => accuracy([-1], [0])).toThrow(MetricsError);
    expect(() => confusionMatrix([3], [0], 3)).toThrow(/in \[0, 3\)/);
  });
});

describe('forgetReport', () => {
  it('class forgetting: UA, RA, TA, forgotten-class test accuracy', () => {
    const r = forgetReport({ train, test, forgottenClasses: [2] });
    expect(r.kind).toBe('class');
    expect(r.numClasses).toBe(3);
    expect(r.forgetAccuracy).toBeCloseTo(200 / 3, 10);
    expect(r.ua).toBeCloseTo(100 / 3, 10);
    expect(r.ra).toBe(80);
    expect(r.ta).toBeCloseTo(200 / 3, 10);
    expect(r.forgottenClassTestAccuracy).toBe(50);
    expect(r.testAccuracy).toBe(60);
    expect(r.perClassTest.map((c) => c.accuracy)).toEqual([100, 50, 50]);
    expect(r.counts).toEqual({
      forgottenTrain: 3,
      retainedTrain: 5,
      remainingTest: 3,
      forgottenTest: 2,
    });
  });

  it('an explicit mask that agrees with the classes gives the same numbers', () => {
    const forgotten = Uint8Array.from(train.label, (l) => (l === 2 ? 1 : 0));
    const a = forgetReport({ train: { ...train, forgotten }, test, forgottenClasses: [2] });
    expect(a).toEqual(forgetReport({ train, test, forgottenClasses: [2] }));
  });

  it('sample forgetting: TA is plain test accuracy, no forgotten-class accuracy', () => {
    const forgotten = [false, true, false, false, false, false, false, true];
    const r = forgetReport({ train: { ...train, forgotten }, test });
    expect(r.kind).toBe('sample');
    expect(r.ua).toBe(50);
    expect(r.ra).toBeCloseTo(500 / 6, 10);
    expect(r.ta).toBe(60);
    expect(r.testAccuracy).toBe(60);
    expect(r.forgottenClassTestAccuracy).toBeUndefined();
  });

  it('reports undefined forgotten-class test accuracy when the test set lacks that class', () => {
    const r = forgetReport({ train, test: { pred: [0, 1], label: [0, 1] }, forgottenClasses: [2] });
    expect(r.forgottenClassTestAccuracy).toBeUndefined();
    expect(r.ta).toBe(100);
  });

  it('rejects inconsistent or empty input with a clear error', () => {
    expect(() => forgetReport({ train, test })).toThrow(/forgottenClasses, train.forgotten/);
    expect(() =>
      forgetReport({
        train: { ...train, forgotten: [1, 0, 0, 0, 0, 0, 0, 0] },
        test,
        forgottenClasses: [2],
      }),
    ).toThrow(/train.forgotten\[4\] is false but its label 2 is a forgotten class/);
    expect(() => forgetReport({ train: { ...train, forgotten: [1] }, test })).toThrow(
      /length mismatch/,
    );
    expect(() => forgetReport({ train, test, forgottenClasses: [1] })).not.toThrow();
    expect(() => forgetReport({ train, test, forgottenClasses: [0, 1, 2] })).toThrow(/retained/);
    expect(() =>
      forgetReport({ train, test: { pred: [2], label: [2] }, forgottenClasses: [2] }),
    ).toThrow(/no test sample outside the forgotten classes/);
    expect(() => forgetReport({ train: { ...train, forgotten: new Uint8Array(8) }, test })).toThrow(
      /no training sample is forgotten/,
    );
    expect(() => forgetReport({ train, test, forgottenClasses: [2], numClasses: 2 })).toThrow(
      /not a class id/,
    );
    expect(() => forgetReport({ train, test, forgottenClasses: [1.5] })).toThrow(/not a class id/);
    expect(() =>
      forgetReport({ train: { ...train, forgotten: [2, 0, 0, 0, 0, 0, 0, 0] }, test }),
    ).toThrow(/not a boolean or 0\/1/);
    expect(() => forgetReport({ train, test, forgottenClasses: [2], numClasses: 0 })).toThrow(
      /positive integer/,
    );
  });
});
