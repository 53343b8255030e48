import { type ChannelStats, createRng, type Dataset, deriveSeed } from '@lethe/data';
import type { MoEModel } from '@lethe/model';
import { featureProbe, forgetReport, miaEfficacy } from '@lethe/metrics';
import { internalFeatures, modelOutputs } from './model-outputs';

/** Evidence about one class in one model; percentages 0–100 (see docs/metrics.md). */
export interface ForgetMetrics {
  /** 100 − accuracy on the class's training samples. */
  ua: number;
  /** Accuracy on the retained training samples. */
  ra: number;
  /** Test accuracy on the other classes. */
  ta: number;
  forgottenClassTestAccuracy: number;
  testAccuracy: number;
  perClassTest: number[];
  /** % of the class's training samples a confidence-based membership attack calls non-members. */
  miaEfficacy: number;
  miaAttackAccuracy: number;
  /**
   * % of the class's test samples a linear probe on the model's internal features (before any
   * output mask) still recognises as the class.
   */
  featureProbe: number;
  featureProbeHeldOutAccuracy: number | undefined;
  /**
   * UA, forgotten-class test accuracy and MIA-Efficacy on the raw outputs, before any
   * serving-time mask: what the weights still know. Equal to the masked values when no class is
   * suppressed; for `mask` they stay at the original model's.
   */
  unmasked: { ua: number; forgottenClassTestAccuracy: number; miaEfficacy: number };
  /** [class][expert] routing counts on the test set. */
  routingTest: number[][];
  seconds: number;
}

export interface MeasureOptions {
  /** Training samples of the class (and as many others) the probe is fitted on. Default 2,000. */
  probeSamples?: number;
  seed?: number;
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
  const trainOut = modelOutputs(model, train, normalise, { suppressClasses });
  const testOut = modelOutputs(model, test, normalise, { suppressClasses });
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

  // The probe reads every expert on every sample, so it is fitted on a seeded subsample.
  const perSide = options.probeSamples ?? 2000;
  const rng = createRng(deriveSeed(seed, 'probe'));
  const pick = (ds: Dataset, keep: (label: number) => boolean, count: number): Int32Array => {
    const all = Int32Array.from({ length: ds.size }, (_, i) => i).filter((i) =>
      keep(ds.labels[i]!),
    );
    return rng.shuffle(all).slice(0, count).sort();
  };
  const positive = pick(train, (l) => l === classIndex, perSide);
  const negative = pick(train, (l) => l !== classIndex, positive.length);
  const fitPositions = Int32Array.from([...positive, ...negative]).sort();
  const fit = internalFeatures(model, train, normalise, fitPositions);
  const heldTest = internalFeatures(
    model,
    test,
    normalise,
    pick(test, (l) => l === classIndex, test.size),
  );
  const probe = featureProbe({
    features: { data: fit.data, shape: [fit.rows, fit.cols] },
    target: Uint8Array.from(fitPositions, (p) => (train.labels[p] === classIndex ? 1 : 0)),
    test: { data: heldTest.data, shape: [heldTest.rows, heldTest.cols] },
    seed,
  });

  return {
    ua: report.ua,
    ra: report.ra,
    ta: report.ta,
    forgottenClassTestAccuracy: report.forgottenClassTestAccuracy ?? Number.NaN,
    testAccuracy: report.testAccuracy,
    perClassTest: report.perClassTest.map((c) => c.accuracy),
    miaEfficacy: mia.efficacy,
    miaAttackAccuracy: mia.attackAccuracy,
    featureProbe: probe.testAccuracy,
    featureProbeHeldOutAccuracy: probe.heldOutAccuracy,
    unmasked: {
      ua: unmasked.report.ua,
      forgottenClassTestAccuracy: unmasked.report.forgottenClassTestAccuracy ?? Number.NaN,
      miaEfficacy: unmasked.mia.efficacy,
    },
    routingTest: testOut.routing,
    seconds: (performance.now() - started) / 1000,
  };
}
