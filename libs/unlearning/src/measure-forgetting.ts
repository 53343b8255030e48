import { type ChannelStats, createRng, type Dataset, deriveSeed } from '@lethe/data';
import type { MoEModel } from '@lethe/model';
import { featureProbe, forgetReport, miaEfficacy } from '@lethe/metrics';
import type { FrozenExpertCache } from './frozen-expert-cache';
import { internalFeatures, type ModelOutputs, modelOutputs } from './model-outputs';
import type { OutputMemo } from './output-memo';
import type { ForgetMetrics, MeasureMode } from '@lethe/ledger';

// What a measurement yields is stored in receipts: its schema is @lethe/ledger's.
export {
  type ForgetMetrics,
  type MeasuredOn,
  MEASURE_MODES,
  type MeasureMode,
} from '@lethe/ledger';

/** `sample` mode: retained training samples measured at most (the feature probe is skipped). */
export const SAMPLE_MEASURE = { retained: 5000 } as const;

export interface MeasureOptions {
  /** `sample` (default): all forgotten, at most 5,000 retained training samples; `full`: all. */
  mode?: MeasureMode;
  seed?: number;
  /**
   * Frozen experts' logits on training and test positions: a targeted forget changes only the
   * router and a few experts, so the "after" pass reuses what the "before" pass computed.
   */
  caches?: { train: FrozenExpertCache; test: FrozenExpertCache };
  /** Outputs of these weights already known (filled with what is computed). */
  memos?: { train: OutputMemo; test: OutputMemo };
}

/**
 * The training positions a measurement covers: every sample of the class, and all retained
 * ones (`full`), or those among a seeded SAMPLE_MEASURE.retained of the whole set (`sample`).
 * The seeded part does not depend on the class, so outputs measured for one forget (or after
 * training) serve the next.
 */
export function measurePositions(
  train: Dataset,
  classIndex: number,
  mode: MeasureMode,
  seed: number,
): Int32Array {
  const all = Int32Array.from({ length: train.size }, (_, i) => i);
  if (mode === 'full') return all;
  const forgotten = all.filter((i) => train.labels[i] === classIndex);
  const picked = measureSample(train, seed).filter((i) => train.labels[i] !== classIndex);
  return Int32Array.from([...forgotten, ...picked]).sort();
}

/** The seeded SAMPLE_MEASURE.retained training positions every `sample` measurement covers. */
export function measureSample(train: Dataset, seed: number): Int32Array {
  const all = Int32Array.from({ length: train.size }, (_, i) => i);
  return createRng(deriveSeed(seed, 'measure-sample'))
    .shuffle(all)
    .slice(0, SAMPLE_MEASURE.retained)
    .sort();
}

/**
 * The model's outputs on some training positions and on the whole test split, through the
 * frozen-expert caches and output memos when given: what every forgetting metric reads.
 */
export function trainAndTestOutputs(
  model: MoEModel,
  train: Dataset,
  test: Dataset,
  normalise: ChannelStats,
  positions: Int32Array,
  suppressClasses: readonly number[],
  options: Pick<MeasureOptions, 'caches' | 'memos'>,
): { trainOut: ModelOutputs; testOut: ModelOutputs } {
  const trainOut = modelOutputs(model, train, normalise, {
    suppressClasses,
    positions,
    ...(options.caches ? { cache: options.caches.train } : {}),
    ...(options.memos ? { memo: options.memos.train } : {}),
  });
  const testOut = modelOutputs(model, test, normalise, {
    suppressClasses,
    ...(options.caches ? { cache: options.caches.test } : {}),
    ...(options.memos ? { memo: options.memos.test } : {}),
  });
  return { trainOut, testOut };
}

/** Runs the model over train and test data and computes every forgetting metric for a class. */
export function measureForgetting(
  model: MoEModel,
  train: Dataset,
  test: Dataset,
  classIndex: number,
  normalise: ChannelStats,
  suppressClasses: readonly number[],
  options: MeasureOptions = {},
): ForgetMetrics {
  const started = performance.now();
  const seed = options.seed ?? 0;
  const mode = options.mode ?? 'sample';
  const positions = measurePositions(train, classIndex, mode, seed);
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
  const measureOutputs = (
    onTrain: { pred: Int32Array; probs: Float32Array },
    onTest: { pred: Int32Array; probs: Float32Array },
  ): { report: ReturnType<typeof forgetReport>; mia: ReturnType<typeof miaEfficacy> } => {
    const report = forgetReport({
      train: { pred: onTrain.pred, label: trainOut.labels },
      test: { pred: onTest.pred, label: testOut.labels },
      forgottenClasses: [classIndex],
      numClasses: classes,
    });
    const rows = (
      probsOf: Float32Array,
      labels: Int32Array,
      keep: (label: number) => boolean,
    ): { probs: Float32Array; labels: Int32Array } => {
      const positions = Array.from(labels.keys()).filter((i) => keep(labels[i]!));
      const probs = new Float32Array(positions.length * classes);
      positions.forEach((p, i) =>
        probs.set(probsOf.subarray(p * classes, (p + 1) * classes), i * classes),
      );
      return { probs, labels: Int32Array.from(positions, (p) => labels[p]!) };
    };
    const mia = miaEfficacy({
      retain: rows(onTrain.probs, trainOut.labels, (l) => l !== classIndex),
      // Non-members from the kept classes only: the forgotten class's own test samples would
      // look like non-members because of the forgetting and move the attack's threshold.
      test: rows(onTest.probs, testOut.labels, (l) => l !== classIndex),
      forget: rows(onTrain.probs, trainOut.labels, (l) => l === classIndex),
      seed,
    });
    return { report, mia };
  };
  const { report, mia } = measureOutputs(trainOut, testOut);
  const unmasked =
    suppressClasses.length > 0 ? measureOutputs(trainOut.raw, testOut.raw) : { report, mia };

  // The probe reads every expert on every sample: as costly as the rest of the measurement,
  // so only a `full` measurement fits it.
  const probe =
    mode === 'full' ? probeClass(model, train, test, classIndex, normalise, seed) : undefined;

  const forgottenCount = positions.filter((p) => train.labels[p] === classIndex).length;
  return {
    ua: report.ua,
    ra: report.ra,
    ta: report.ta,
    forgottenClassTestAccuracy: report.forgottenClassTestAccuracy ?? Number.NaN,
    testAccuracy: report.testAccuracy,
    perClassTest: report.perClassTest.map((c) => c.accuracy),
    miaEfficacy: mia.efficacy,
    miaAttackAccuracy: mia.attackAccuracy,
    ...(probe
      ? {
          featureProbe: probe.result.testAccuracy,
          featureProbeHeldOutAccuracy: probe.result.heldOutAccuracy,
        }
      : { featureProbeHeldOutAccuracy: undefined }),
    unmasked: {
      ua: unmasked.report.ua,
      forgottenClassTestAccuracy: unmasked.report.forgottenClassTestAccuracy ?? Number.NaN,
      miaEfficacy: unmasked.mia.efficacy,
    },
    routingTest: testOut.routing,
    measuredOn: {
      mode,
      trainForgotten: forgottenCount,
      trainRetained: positions.length - forgottenCount,
      trainRetainedOf: train.size - forgottenCount,
      test: test.size,
      ...(probe ? { probe: probe.sizes } : {}),
    },
    seconds: (performance.now() - started) / 1000,
  };
}

/** A linear probe on internal features: 2,000 class and 2,000 other training samples. */
function probeClass(
  model: MoEModel,
  train: Dataset,
  test: Dataset,
  classIndex: number,
  normalise: ChannelStats,
  seed: number,
): { result: ReturnType<typeof featureProbe>; sizes: { fit: number; test: number } } {
  const rng = createRng(deriveSeed(seed, 'probe'));
  const pick = (ds: Dataset, keep: (label: number) => boolean, count: number): Int32Array => {
    const all = Int32Array.from({ length: ds.size }, (_, i) => i).filter((i) =>
      keep(ds.labels[i]!),
    );
    return rng.shuffle(all).slice(0, count).sort();
  };
  const positive = pick(train, (l) => l === classIndex, 2000);
  const negative = pick(train, (l) => l !== classIndex, positive.length);
  const fitPositions = Int32Array.from([...positive, ...negative]).sort();
  const fit = internalFeatures(model, train, normalise, fitPositions);
  const heldTest = internalFeatures(
    model,
    test,
    normalise,
    pick(test, (l) => l === classIndex, test.size),
  );
  const result = featureProbe({
    features: { data: fit.data, shape: [fit.rows, fit.cols] },
    target: Uint8Array.from(fitPositions, (p) => (train.labels[p] === classIndex ? 1 : 0)),
    test: { data: heldTest.data, shape: [heldTest.rows, heldTest.cols] },
    seed,
  });
  return { result, sizes: { fit: fitPositions.length, test: heldTest.rows } };
}
