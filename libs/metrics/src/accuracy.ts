import { MetricsError } from './errors';
import {
  type Mask,
  checkClassIds,
  checkNonEmpty,
  checkSameLength,
  maxClassId,
  toBits,
} from './validate';

/** Predicted and true class ids of the same samples, in the same order. */
export interface Predictions {
  pred: ArrayLike<number>;
  label: ArrayLike<number>;
}

export interface ClassAccuracy {
  /** Samples whose true class is this one. */
  total: number;
  correct: number;
  /** Percent, 0–100; NaN where the class has no samples. */
  accuracy: number;
}

function checkNumClasses(n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new MetricsError(`numClasses must be a positive integer, got ${n}`);
  }
}

function checkPredictions(what: string, p: Predictions, numClasses?: number): void {
  checkSameLength(`${what} pred/label`, p.pred, p.label);
  checkClassIds(`${what}.pred`, p.pred, numClasses);
  checkClassIds(`${what}.label`, p.label, numClasses);
}

function countCorrect(p: Predictions, select?: (i: number) => boolean): [number, number] {
  let correct = 0;
  let total = 0;
  for (let i = 0; i < p.label.length; i++) {
    if (select && !select(i)) continue;
    total++;
    if (p.pred[i] === p.label[i]) correct++;
  }
  return [correct, total];
}

/** Percent of samples predicted correctly (0–100). Throws on an empty set. */
export function accuracy(pred: ArrayLike<number>, label: ArrayLike<number>): number {
  const p = { pred, label };
  checkPredictions('accuracy', p);
  checkNonEmpty('accuracy', label.length);
  const [correct, total] = countCorrect(p);
  return (100 * correct) / total;
}

/** Counts indexed [true class][predicted class]. */
export function confusionMatrix(
  pred: ArrayLike<number>,
  label: ArrayLike<number>,
  numClasses?: number,
): number[][] {
  const p = { pred, label };
  if (numClasses !== undefined) checkNumClasses(numClasses);
  checkPredictions('confusionMatrix', p, numClasses);
  const k = numClasses ?? maxClassId(pred, label) + 1;
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < label.length; i++) m[label[i]!]![pred[i]!]!++;
  return m;
}

/** Accuracy of each true class; an absent class gets NaN rather than throwing. */
export function perClassAccuracy(
  pred: ArrayLike<number>,
  label: ArrayLike<number>,
  numClasses?: number,
): ClassAccuracy[] {
  return confusionMatrix(pred, label, numClasses).map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    const correct = row[c]!;
    return { total, correct, accuracy: total === 0 ? Number.NaN : (100 * correct) / total };
  });
}

export interface ForgetReportInput {
  /** Training samples, with which of them were asked to be forgotten. */
  train: Predictions & {
    /**
     * Forgotten training samples. Optional for class forgetting, where it defaults to "label is
     * a forgotten class"; required for sample forgetting.
     */
    forgotten?: Mask;
  };
  test: Predictions;
  /** Classes asked to be forgotten; empty or absent for sample-level forgetting. */
  forgottenClasses?: readonly number[];
  /** Defaults to 1 + the largest class id seen. */
  numClasses?: number;
}

export interface ForgetReport {
  /** 'class' when any class was forgotten, else 'sample'. */
  kind: 'class' | 'sample';
  numClasses: number;
  forgottenClasses: number[];
  /** Unlearning accuracy: 100 − accuracy on the forgotten training samples. */
  ua: number;
  /** Accuracy on the forgotten training samples (= 100 − UA). */
  forgetAccuracy: number;
  /** Remaining accuracy: accuracy on the retained training samples. */
  ra: number;
  /** Test accuracy on samples whose class was not forgotten (all test samples if none was). */
  ta: number;
  /** Accuracy on test samples of the forgotten classes; undefined when there are none. */
  forgottenClassTestAccuracy: number | undefined;
  /** Accuracy on every test sample, forgotten classes included. */
  testAccuracy: number;
  /** Per true class, on the test samples. */
  perClassTest: ClassAccuracy[];
  counts: {
    forgottenTrain: number;
    retainedTrain: number;
    remainingTest: number;
    forgottenTest: number;
  };
}

/** UA, RA, TA and the forgotten-class test accuracy of one model, all in percent. */
export function forgetReport(input: ForgetReportInput): ForgetReport {
  const { train, test } = input;
  const classes = [...new Set(input.forgottenClasses ?? [])].sort((a, b) => a - b);
  checkClassIds('forgottenClasses', classes);
  if (input.numClasses !== undefined) checkNumClasses(input.numClasses);
  const numClasses =
    input.numClasses ??
    Math.max(maxClassId(train.pred, train.label, test.pred, test.label), ...classes) + 1;
  checkPredictions('train', train, numClasses);
  checkPredictions('test', test, numClasses);
  checkClassIds('forgottenClasses', classes, numClasses);

  const isForgottenClass = new Uint8Array(numClasses);
  for (const c of classes) isForgottenClass[c] = 1;

  let forgotten: Uint8Array;
  if (train.forgotten !== undefined) {
    checkSameLength('train.forgotten/label', train.forgotten, train.label);
    forgotten = toBits('train.forgotten', train.forgotten);
    // A retained sample of a forgotten class would be counted in RA, hiding the forgetting.
    for (let i = 0; i < forgotten.length; i++) {
      if (!forgotten[i] && isForgottenClass[train.label[i]!]) {
        throw new MetricsError(
          `train.forgotten[${i}] is false but its label ${train.label[i]} is a forgotten class`,
        );
      }
    }
  } else if (classes.length > 0) {
    forgotten = Uint8Array.from(train.label, (l) => isForgottenClass[l]!);
  } else {
    throw new MetricsError('forgetReport: give forgottenClasses, train.forgotten, or both');
  }

  const [fCorrect, fTotal] = countCorrect(train, (i) => forgotten[i] === 1);
  const [rCorrect, rTotal] = countCorrect(train, (i) => forgotten[i] === 0);
  const [tCorrect, tTotal] = countCorrect(test, (i) => !isForgottenClass[test.label[i]!]);
  const [ftCorrect, ftTotal] = countCorrect(test, (i) => isForgottenClass[test.label[i]!] === 1);
  if (fTotal === 0) throw new MetricsError('forgetReport: no training sample is forgotten');
  if (rTotal === 0) throw new MetricsError('forgetReport: no training sample is retained');
  if (tTotal === 0) {
    throw new MetricsError('forgetReport: no test sample outside the forgotten classes');
  }

  const forgetAccuracy = (100 * fCorrect) / fTotal;
  return {
    kind: classes.length > 0 ? 'class' : 'sample',
    numClasses,
    forgottenClasses: classes,
    ua: 100 - forgetAccuracy,
    forgetAccuracy,
    ra: (100 * rCorrect) / rTotal,
    ta: (100 * tCorrect) / tTotal,
    forgottenClassTestAccuracy: ftTotal === 0 ? undefined : (100 * ftCorrect) / ftTotal,
    testAccuracy: (100 * (tCorrect + ftCorrect)) / (tTotal + ftTotal),
    perClassTest: perClassAccuracy(test.pred, test.label, numClasses),
    counts: {
      forgottenTrain: fTotal,
      retainedTrain: rTotal,
      remainingTest: tTotal,
      forgottenTest: ftTotal,
    },
  };
}
