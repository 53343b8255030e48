import { MetricsError } from './errors';
import type { FeatureMatrix } from './feature-matrix';
import {
  type LogisticRegressionModel,
  decisionFunction,
  fitLogisticRegression,
} from './logistic-regression';
import { createRng, shuffleInPlace } from './random';
import { checkClassIds, checkFraction, checkNonEmpty, checkPositive } from './validate';

/**
 * Per-sample attack features, all from the model's softmax output and the true label:
 * - `confidence`: p_y, the probability of the true class (the OPTML benchmarks' MIA-Efficacy);
 * - `entropy`: −Σ p_j log p_j;
 * - `modifiedEntropy`: Song & Mittal's −(1−p_y) log p_y − Σ_{j≠y} p_j log(1−p_j).
 */
export type MiaFeature = 'confidence' | 'entropy' | 'modifiedEntropy';

/** Softmax outputs, row-major [n, numClasses], and the n true labels. */
export interface ProbabilitySet {
  probs: ArrayLike<number>;
  labels: ArrayLike<number>;
}

export interface MiaOptions {
  /** Default ['confidence']. */
  features?: readonly MiaFeature[];
  /** Seeds the member subsample and the held-out split. Default 0. */
  seed?: number;
  /** Share of each side held out to measure the attack itself. Default 0.2. */
  heldOutFraction?: number;
  /** L2 on the attack's standardised coefficients. Default 1e-4. */
  l2?: number;
}

export interface MiaInput extends MiaOptions {
  /** Retained training samples: the members the attack learns from. */
  retain: ProbabilitySet;
  /** Samples the model never trained on: the non-members. */
  test: ProbabilitySet;
  /** Forgotten training samples, judged by the fitted attack. */
  forget: ProbabilitySet;
}

export interface MiaResult {
  /** Percent of forgotten samples the attack calls non-members (0–100; higher = more forgotten). */
  efficacy: number;
  /** Attack accuracy (percent) on the held-out balanced member/non-member split; 50 = chance. */
  attackAccuracy: number;
  /** Area under the attack's ROC curve on the held-out split, in [0, 1]; 0.5 = chance. */
  attackAuc: number;
  /** Attack accuracy (percent) on the balanced split it was fitted on. */
  attackTrainAccuracy: number;
  /**
   * With the `confidence` feature alone: the p_y above which a sample is called a member.
   * Undefined when the attack found higher confidence no more member-like (a useless attack).
   */
  threshold: number | undefined;
  features: MiaFeature[];
  counts: { fitPerSide: number; heldOutPerSide: number; forget: number };
  model: LogisticRegressionModel;
}

const LOG_FLOOR = 1e-30;
const safeLog = (p: number): number => Math.log(Math.max(p, LOG_FLOOR));

function classesOf(what: string, set: ProbabilitySet): number {
  const n = set.labels.length;
  checkNonEmpty(what, n);
  const c = set.probs.length / n;
  if (!Number.isInteger(c) || c < 2) {
    throw new MetricsError(
      `${what}: ${set.probs.length} probabilities for ${n} labels is not n × numClasses (≥ 2)`,
    );
  }
  return c;
}

/**
 * Probabilities are checked because logits passed by mistake would still give numbers, just
 * meaningless ones.
 */
function checkProbabilities(what: string, set: ProbabilitySet, c: number): void {
  checkClassIds(`${what}.labels`, set.labels, c);
  const { probs } = set;
  for (let i = 0; i < set.labels.length; i++) {
    let sum = 0;
    for (let j = 0; j < c; j++) {
      const p = probs[i * c + j]!;
      if (!(p >= -1e-6 && p <= 1 + 1e-6)) {
        throw new MetricsError(
          `${what}.probs[${i}, ${j}] = ${p} is not a probability (softmax the logits first)`,
        );
      }
      sum += p;
    }
    if (Math.abs(sum - 1) > 1e-3) {
      throw new MetricsError(`${what}.probs row ${i} sums to ${sum}, not 1 (softmax the logits)`);
    }
  }
}

/** Attack features of each sample, as a [n, features.length] matrix. */
export function miaFeatures(
  set: ProbabilitySet,
  features: readonly MiaFeature[] = ['confidence'],
): FeatureMatrix {
  const c = classesOf('miaFeatures', set);
  checkProbabilities('miaFeatures', set, c);
  return extract(set, c, features);
}

function extract(set: ProbabilitySet, c: number, features: readonly MiaFeature[]): FeatureMatrix {
  const n = set.labels.length;
  const f = features.length;
  const out = new Float64Array(n * f);
  const { probs, labels } = set;
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    const py = Math.min(1, Math.max(0, probs[i * c + y]!));
    for (let k = 0; k < f; k++) {
      let v: number;
      switch (features[k]) {
        case 'confidence':
          v = py;
          break;
        case 'entropy':
          v = 0;
          for (let j = 0; j < c; j++) {
            const p = probs[i * c + j]!;
            if (p > 0) v -= p * Math.log(p);
          }
          break;
        case 'modifiedEntropy':
          v = (py - 1) * safeLog(py);
          for (let j = 0; j < c; j++) {
            if (j !== y) v -= probs[i * c + j]! * safeLog(1 - probs[i * c + j]!);
          }
          break;
        default:
          throw new MetricsError(`unknown MIA feature ${String(features[k])}`);
      }
      out[i * f + k] = v;
    }
  }
  return { data: out, shape: [n, f] };
}

/** Row-wise softmax of logits [n, numClasses], stable for large logits. */
export function softmax(logits: ArrayLike<number>, numClasses: number): Float64Array {
  if (!Number.isInteger(numClasses) || numClasses < 1 || logits.length % numClasses !== 0) {
    throw new MetricsError(
      `softmax: ${logits.length} logits do not split into rows of ${numClasses}`,
    );
  }
  const out = new Float64Array(logits.length);
  for (let r = 0; r < logits.length; r += numClasses) {
    let max = -Infinity;
    for (let j = 0; j < numClasses; j++) max = Math.max(max, logits[r + j]!);
    let sum = 0;
    for (let j = 0; j < numClasses; j++) sum += out[r + j] = Math.exp(logits[r + j]! - max);
    for (let j = 0; j < numClasses; j++) out[r + j] /= sum;
  }
  return out;
}

/**
 * Area under the ROC curve: the probability that a random positive scores above a random
 * negative, ties counting half (the Mann–Whitney statistic).
 */
export function rocAuc(scores: ArrayLike<number>, positive: ArrayLike<number | boolean>): number {
  if (scores.length !== positive.length) {
    throw new MetricsError(`rocAuc: ${scores.length} scores for ${positive.length} labels`);
  }
  const order = Array.from({ length: scores.length }, (_, i) => i).sort(
    (a, b) => scores[a]! - scores[b]!,
  );
  let rankSum = 0;
  let nPos = 0;
  for (let start = 0; start < order.length;) {
    let end = start;
    while (end + 1 < order.length && scores[order[end + 1]!] === scores[order[start]!]) end++;
    const midRank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) {
      if (positive[order[k]!]) {
        rankSum += midRank;
        nPos++;
      }
    }
    start = end + 1;
  }
  const nNeg = order.length - nPos;
  if (nPos === 0 || nNeg === 0) throw new MetricsError('rocAuc: needs both classes');
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * MIA-Efficacy (Jia et al. 2023): an attack learns member vs non-member from retained training
 * samples and test samples, then judges the forgotten samples. The two sides are balanced by
 * subsampling the larger one, so the attack's prior is 50/50 and its accuracy has chance = 50.
 */
export function miaEfficacy(input: MiaInput): MiaResult {
  const features = [...(input.features ?? ['confidence'])];
  if (features.length === 0) throw new MetricsError('miaEfficacy: no features chosen');
  const seed = input.seed ?? 0;
  const heldOut = input.heldOutFraction ?? 0.2;
  checkFraction('heldOutFraction', heldOut, false);
  const l2 = input.l2 ?? 1e-4;
  checkPositive('l2', l2, true);

  const c = classesOf('retain', input.retain);
  for (const [name, set] of [
    ['test', input.test],
    ['forget', input.forget],
  ] as const) {
    const cs = classesOf(name, set);
    if (cs !== c) throw new MetricsError(`${name} has ${cs} classes, retain has ${c}`);
  }
  checkProbabilities('retain', input.retain, c);
  checkProbabilities('test', input.test, c);
  checkProbabilities('forget', input.forget, c);

  const nR = input.retain.labels.length;
  const nT = input.test.labels.length;
  const perSide = Math.min(nR, nT);
  const k = Math.max(1, Math.round(heldOut * perSide));
  if (perSide - k < 1) {
    throw new MetricsError(
      `miaEfficacy: ${perSide} samples per side is too few to fit and hold out (need ≥ 2)`,
    );
  }
  const members = shuffleInPlace(identity(nR), createRng(seed, 1)).subarray(0, perSide);
  const nonMembers = shuffleInPlace(identity(nT), createRng(seed, 2)).subarray(0, perSide);

  const f = features.length;
  const memberX = extract(input.retain, c, features).data;
  const nonMemberX = extract(input.test, c, features).data;
  // Rows [0, perSide) are members, [perSide, 2·perSide) non-members; the first k of each held out.
  const data = new Float64Array(2 * perSide * f);
  const isMember = new Uint8Array(2 * perSide);
  for (let r = 0; r < perSide; r++) {
    data.set(memberX.subarray(members[r]! * f, members[r]! * f + f), r * f);
    data.set(nonMemberX.subarray(nonMembers[r]! * f, nonMembers[r]! * f + f), (perSide + r) * f);
    isMember[r] = 1;
  }
  const all: FeatureMatrix = { data, shape: [2 * perSide, f] };
  const fitRows: number[] = [];
  const heldRows: number[] = [];
  for (let r = 0; r < perSide; r++) {
    (r < k ? heldRows : fitRows).push(r, perSide + r);
  }
  const model = fitLogisticRegression(all, isMember, { rows: fitRows, l2 });

  const logits = decisionFunction(model, all);
  const accuracyOn = (rows: number[]): number => {
    let correct = 0;
    for (const r of rows) if ((logits[r]! > 0 ? 1 : 0) === isMember[r]) correct++;
    return (100 * correct) / rows.length;
  };
  const heldScores = heldRows.map((r) => logits[r]!);
  const heldLabels = heldRows.map((r) => isMember[r]!);

  const forgetLogits = decisionFunction(model, extract(input.forget, c, features));
  let calledNonMember = 0;
  for (const z of forgetLogits) if (!(z > 0)) calledNonMember++;

  const w = model.weights[0]!;
  return {
    efficacy: (100 * calledNonMember) / forgetLogits.length,
    attackAccuracy: accuracyOn(heldRows),
    attackAuc: rocAuc(heldScores, heldLabels),
    attackTrainAccuracy: accuracyOn(fitRows),
    threshold: f === 1 && features[0] === 'confidence' && w > 0 ? -model.bias / w : undefined,
    features,
    counts: { fitPerSide: perSide - k, heldOutPerSide: k, forget: forgetLogits.length },
    model,
  };
}

function identity(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}
