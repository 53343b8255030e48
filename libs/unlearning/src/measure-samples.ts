import type { ChannelStats, Dataset } from '@lethe/data';
import type { MoEModel } from '@lethe/model';
import { miaEfficacy } from '@lethe/metrics';
import type { FrozenExpertCache } from './frozen-expert-cache';
import { type MeasureMode, measureSample, trainAndTestOutputs } from './measure-forgetting';
import type { SampleForgetMetrics } from '@lethe/ledger';
import type { OutputMemo } from './output-memo';

// Stored in receipts: the schema (and its definitions) is @lethe/ledger's.
export type { SampleForgetMetrics } from '@lethe/ledger';

/**
 * The training positions a sample measurement covers: every forgotten one, and the retained
 * ones (`full`) or those among the seeded draw every `sample` measurement shares (so outputs
 * stored after training or the last forget are reused).
 */
export function sampleMeasurePositions(
  train: Dataset,
  forgotten: ReadonlySet<number>,
  mode: MeasureMode,
  seed: number,
): Int32Array {
  if (mode === 'full') return Int32Array.from({ length: train.size }, (_, i) => i);
  const picked = measureSample(train, seed).filter((p) => !forgotten.has(p));
  return Int32Array.from([...forgotten, ...picked]).sort();
}

/** Runs the model over the forgotten, some retained and all test samples; UA, RA, TA, MIA. */
export function measureSampleForgetting(
  model: MoEModel,
  train: Dataset,
  test: Dataset,
  forgotten: Int32Array,
  normalise: ChannelStats,
  suppressClasses: readonly number[],
  options: {
    mode?: MeasureMode;
    seed?: number;
    caches?: { train: FrozenExpertCache; test: FrozenExpertCache };
    memos?: { train: OutputMemo; test: OutputMemo };
  } = {},
): SampleForgetMetrics {
  const started = performance.now();
  const seed = options.seed ?? 0;
  const mode = options.mode ?? 'sample';
  const isForgotten = new Set(forgotten);
  const positions = sampleMeasurePositions(train, isForgotten, mode, seed);
  const { trainOut, testOut } = trainAndTestOutputs(
    model,
    train,
    test,
    normalise,
    positions,
    suppressClasses,
    options,
  );
  const classes = model.config.numClasses;
  const rows = (
    out: { probs: Float32Array; labels: Int32Array; pred: Int32Array },
    keep: (row: number) => boolean,
  ): { probs: Float32Array; labels: Int32Array; correct: number } => {
    const picked = Array.from(out.labels.keys()).filter(keep);
    const probs = new Float32Array(picked.length * classes);
    picked.forEach((r, i) =>
      probs.set(out.probs.subarray(r * classes, (r + 1) * classes), i * classes),
    );
    const correct = picked.filter((r) => out.pred[r] === out.labels[r]).length;
    return { probs, labels: Int32Array.from(picked, (r) => out.labels[r]!), correct };
  };
  const forget = rows(trainOut, (r) => isForgotten.has(positions[r]!));
  const retain = rows(trainOut, (r) => !isForgotten.has(positions[r]!));
  const all = rows(testOut, () => true);
  const pct = (correct: number, n: number): number => (n > 0 ? (100 * correct) / n : Number.NaN);
  const mia = miaEfficacy({ retain, test: all, forget, seed });
  return {
    ua: 100 - pct(forget.correct, forget.labels.length),
    ra: pct(retain.correct, retain.labels.length),
    ta: pct(all.correct, all.labels.length),
    miaEfficacy: mia.efficacy,
    miaAttackAccuracy: mia.attackAccuracy,
    measuredOn: {
      mode,
      trainForgotten: forget.labels.length,
      trainRetained: retain.labels.length,
      trainRetainedOf: train.size - forget.labels.length,
      test: test.size,
    },
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * The model's mean cross-entropy on the samples of `ds` whose outputs `memo` holds — on the test
 * split, how a sample the model never saw looks to it; ln C (chance's) when none is measured.
 */
export function heldOutLoss(memo: OutputMemo, ds: Dataset, classes: number): number {
  let sum = 0;
  let count = 0;
  for (let p = 0; p < ds.size; p++) {
    const slot = ds.indices[p]!;
    if (!memo.known[slot]) continue;
    sum -= Math.log(Math.max(memo.probs[slot * classes + ds.labels[p]!]!, 1e-12));
    count += 1;
  }
  return count > 0 ? sum / count : Math.log(classes);
}
