import {
  ForgetMethod,
  ForgetMode,
  type ForgetMetrics as ProtoMetrics,
  type ForgetPlan,
  type ForgetPreview as ProtoPreview,
  type ForgetRequestRecord,
  MeasureMode,
  type ObjectRef,
  type Receipt,
  type SisaForgetPlan as ProtoSisaPlan,
  UnlearningLoss,
} from '@lethe/proto';
import type { SisaForgetPlan, SisaReceipt } from '@lethe/sisa';
import {
  type ClassForgetPlan,
  type ClassForgetRequestRecord,
  type ForgetMetrics,
  type ForgetPreview,
  type ForgetReceipt,
  isSampleForgetReceipt,
  isSisaReceipt,
  type SampleForgetMethod,
  type SampleForgetMetrics,
  type SampleForgetPlan,
  type SampleForgetPreview,
  type SampleForgetReceipt,
  type SampleForgetRequestRecord,
  type StoredReceipt,
  type UnlearningLoss as UnlearningLossName,
} from '@lethe/unlearning';

const LOSSES: Record<UnlearningLossName, UnlearningLoss> = {
  'complement-ce': UnlearningLoss.UNLEARNING_LOSS_COMPLEMENT_CE,
  'random-label': UnlearningLoss.UNLEARNING_LOSS_RANDOM_LABEL,
  distill: UnlearningLoss.UNLEARNING_LOSS_DISTILL,
};

const METHODS: Record<string, ForgetMethod> = {
  targeted: ForgetMethod.FORGET_METHOD_TARGETED,
  retrain: ForgetMethod.FORGET_METHOD_RETRAIN,
  finetune: ForgetMethod.FORGET_METHOD_FINETUNE,
  'gradient-ascent': ForgetMethod.FORGET_METHOD_GRADIENT_ASCENT,
  'random-label': ForgetMethod.FORGET_METHOD_RANDOM_LABEL,
  mask: ForgetMethod.FORGET_METHOD_MASK,
};

const MEASURES = { sample: MeasureMode.MEASURE_MODE_SAMPLE, full: MeasureMode.MEASURE_MODE_FULL };

/** A class request as a receipt or a dry run records it. */
function requestRecord(r: ClassForgetRequestRecord): ForgetRequestRecord {
  return {
    target: { $case: 'classTarget', value: { index: r.classIndex, name: r.className } },
    method: METHODS[r.method] ?? ForgetMethod.FORGET_METHOD_UNSPECIFIED,
    loss: r.method !== 'targeted' ? UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED : LOSSES[r.loss],
    epochs: r.epochs,
    learningRate: r.learningRate,
    lambda: r.lambda,
    select: r.method === 'targeted' ? r.select : '',
    maskOutput: r.maskOutput,
    batchSize: r.batchSize,
    seed: r.seed,
    retainFraction: r.retainFraction,
    anchor: r.anchor,
    measure: r.measure ? MEASURES[r.measure] : MeasureMode.MEASURE_MODE_UNSPECIFIED,
    subjects: [],
  };
}

function plan(p: ClassForgetPlan): ForgetPlan {
  return {
    classIndex: p.classIndex,
    className: p.className,
    samples: p.samples,
    activations: p.activations,
    rule: p.rule,
    experts: p.experts,
    coverage: p.coverage,
    // Absent from receipts made before plans carried collateral.
    expertCollateral: p.expertCollateral ?? [],
    collateral: p.collateral ?? 0,
    retainedRouted: p.retainedRouted ?? 0,
    seenBy: [],
    lineageEpochs: 0,
  };
}

const SAMPLE_METHODS: Record<SampleForgetMethod, ForgetMethod> = {
  finetune: ForgetMethod.FORGET_METHOD_FINETUNE,
  retrain: ForgetMethod.FORGET_METHOD_RETRAIN,
  'neggrad+': ForgetMethod.FORGET_METHOD_NEGGRAD_PLUS,
  scrub: ForgetMethod.FORGET_METHOD_SCRUB,
  'l1-sparse': ForgetMethod.FORGET_METHOD_L1_SPARSE,
};

/** A joint model's samples request as a receipt or a dry run records it. */
function sampleRequestRecord(r: SampleForgetRequestRecord): ForgetRequestRecord {
  return {
    target: { $case: 'sampleIds', value: { ids: r.sampleIds } },
    subjects: r.subjects,
    method: SAMPLE_METHODS[r.method],
    loss: UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED,
    epochs: r.epochs,
    learningRate: r.learningRate,
    lambda: r.lambda,
    select: '',
    maskOutput: false,
    batchSize: r.batchSize,
    seed: r.seed,
    retainFraction: r.retainFraction,
    anchor: r.anchor,
    measure: MEASURES[r.measure],
  };
}

/** The plan from the routing lineage: every expert that saw a sample is retrained. */
function samplePlan(p: SampleForgetPlan): ForgetPlan {
  return {
    samples: p.samples,
    className: '',
    activations: [],
    rule: '',
    experts: p.experts,
    coverage: p.experts.length > 0 ? 1 : 0,
    expertCollateral: [],
    collateral: p.collateral,
    retainedRouted: p.retainedRouted,
    seenBy: p.seenBy,
    lineageEpochs: p.lineageEpochs,
  };
}

/** UA, RA, TA and MIA-Efficacy; what only a class target has is NaN (not measured). */
function sampleMetrics(m: SampleForgetMetrics): ProtoMetrics {
  return {
    ua: m.ua,
    ra: m.ra,
    ta: m.ta,
    forgottenClassTestAccuracy: Number.NaN,
    testAccuracy: m.ta,
    perClassTest: [],
    miaEfficacy: m.miaEfficacy,
    miaAttackAccuracy: m.miaAttackAccuracy,
    featureProbe: Number.NaN,
    featureProbeHeldOutAccuracy: undefined,
    routingTest: undefined,
    seconds: m.seconds,
    // No class is suppressed: the raw outputs are the served ones.
    unmaskedUa: m.ua,
    unmaskedForgottenClassTestAccuracy: Number.NaN,
    unmaskedMiaEfficacy: m.miaEfficacy,
  };
}

/** An approximate sample forget's receipt (joint model) as the API's Receipt. */
function toProtoSampleReceipt(
  receipt: SampleForgetReceipt,
  jobId: string,
  object?: ObjectRef,
): Receipt {
  return {
    schema: receipt.schema,
    requestId: receipt.requestId,
    createdAt: new Date(receipt.createdAt),
    request: sampleRequestRecord(receipt.request),
    // The oracle retrains from scratch without the samples: exact, as a class retrain is.
    mode:
      receipt.request.method === 'retrain'
        ? ForgetMode.FORGET_MODE_EXACT
        : ForgetMode.FORGET_MODE_APPROXIMATE,
    plan: samplePlan(receipt.plan),
    expertsRetrained: receipt.expertsRetrained,
    partsChanged: receipt.partsChanged,
    weights: { before: receipt.weights.before, after: receipt.weights.after },
    manifest: { before: receipt.manifest.before, after: receipt.manifest.after },
    suppressClasses: [],
    metrics: {
      before: sampleMetrics(receipt.metrics.before),
      after: sampleMetrics(receipt.metrics.after),
    },
    timings: { planSeconds: 0, ...receipt.timings },
    engine: receipt.engine,
    history: receipt.history.map((h) => ({
      epoch: h.epoch + 1,
      loss: h.loss,
      accuracy: h.accuracy,
      seconds: h.seconds,
    })),
    frozenExpertPasses: receipt.frozenExpertPasses,
    sisa: undefined,
    jobId,
    object,
    ascentStop: receipt.ascentStop,
  };
}

/** A dry run's plan and estimate (a class, or a joint model's samples) as the API's. */
export function toProtoPreview(preview: ForgetPreview | SampleForgetPreview): ProtoPreview {
  if (preview.request.kind === 'samples') {
    const p = preview as SampleForgetPreview;
    return {
      request: sampleRequestRecord(p.request),
      plan: samplePlan(p.plan),
      // The proto's ForgetEstimate mirrors libs/unlearning's field for field.
      estimate: p.estimate,
      manifestRevision: p.manifestRevision,
    };
  }
  return {
    request: requestRecord((preview as ForgetPreview).request),
    plan: plan((preview as ForgetPreview).plan),
    // The proto's ForgetEstimate mirrors libs/unlearning's field for field.
    estimate: preview.estimate,
    manifestRevision: preview.manifestRevision,
  };
}

function metrics(m: ForgetMetrics): ProtoMetrics {
  const classes = m.routingTest.length;
  const experts = m.routingTest[0]?.length ?? 0;
  return {
    ua: m.ua,
    ra: m.ra,
    ta: m.ta,
    forgottenClassTestAccuracy: m.forgottenClassTestAccuracy,
    testAccuracy: m.testAccuracy,
    perClassTest: m.perClassTest,
    miaEfficacy: m.miaEfficacy,
    miaAttackAccuracy: m.miaAttackAccuracy,
    // NaN: not measured (only a `full` measurement fits the probe).
    featureProbe: m.featureProbe ?? Number.NaN,
    featureProbeHeldOutAccuracy: m.featureProbeHeldOutAccuracy,
    routingTest: { rows: classes, cols: experts, counts: m.routingTest.flat() },
    seconds: m.seconds,
    unmaskedUa: m.unmasked.ua,
    unmaskedForgottenClassTestAccuracy: m.unmasked.forgottenClassTestAccuracy,
    unmaskedMiaEfficacy: m.unmasked.miaEfficacy,
  };
}

/** An exact (sisa replay) receipt as the API's Receipt: what was replayed, with the hashes. */
function toProtoSisaReceipt(receipt: SisaReceipt, jobId: string, object?: ObjectRef): Receipt {
  return {
    schema: receipt.schema,
    requestId: receipt.requestId,
    createdAt: new Date(receipt.createdAt),
    request: {
      target: { $case: 'sampleIds', value: { ids: receipt.request.sampleIds } },
      subjects: receipt.request.subjects ?? [],
      method: ForgetMethod.FORGET_METHOD_SISA_REPLAY,
      loss: UnlearningLoss.UNLEARNING_LOSS_UNSPECIFIED,
      epochs: 0,
      learningRate: 0,
      lambda: 0,
      select: '',
      maskOutput: false,
      batchSize: 0,
      seed: 0,
      retainFraction: 0,
      measure: MeasureMode.MEASURE_MODE_UNSPECIFIED,
    },
    mode: ForgetMode.FORGET_MODE_EXACT,
    plan: undefined,
    expertsRetrained: receipt.sisa.shards.map((s) => s.shard),
    partsChanged: Object.keys(receipt.weights.after)
      .filter((p) => receipt.weights.after[p] !== receipt.weights.before[p])
      .sort(),
    weights: { before: receipt.weights.before, after: receipt.weights.after },
    manifest: receipt.manifest,
    suppressClasses: [],
    metrics: undefined,
    timings: {
      planSeconds: 0,
      forgetSeconds: receipt.timings.replaySeconds + receipt.timings.routerSeconds,
      measureSeconds: 0,
      totalSeconds: receipt.timings.totalSeconds,
    },
    engine: '',
    history: [],
    frozenExpertPasses: undefined,
    sisa: {
      shards: receipt.sisa.shards.map((s) => ({
        shard: s.shard,
        slices: s.slices,
        slicesReplayed: s.slicesReplayed,
        samplesRemoved: s.samplesRemoved,
        restoredCheckpointSha256: s.restoredCheckpointSha256,
        checkpointSha256Before: s.checkpointSha256Before,
        checkpointSha256After: s.checkpointSha256After,
      })),
      routerEpochs: receipt.sisa.routerEpochs,
      batch: receipt.batch && {
        batchId: receipt.batch.id ?? '',
        requestIds: receipt.batch.requestIds,
        samples: receipt.batch.samples,
      },
    },
    jobId,
    object,
  };
}

/** A sisa dry run's plan as the API's SisaForgetPlan. */
export function toProtoSisaPlan(plan: SisaForgetPlan): ProtoSisaPlan {
  return {
    manifestRevision: plan.manifestRevision,
    samples: plan.samples,
    shards: plan.shards,
    slices: plan.slices,
    replay: plan.replay.map((r) => ({
      shard: r.shard,
      samplesRemoved: r.samplesRemoved,
      slicesReplayed: r.slicesReplayed,
      sampleEpochs: r.sampleEpochs,
    })),
    sampleEpochs: plan.work.sampleEpochs,
    fullTrainingSampleEpochs: plan.work.fullTrainingSampleEpochs,
    routerEpochs: plan.routerEpochs,
    estimate: plan.estimate
      ? {
          replaySeconds: plan.estimate.replaySeconds,
          routerSeconds: plan.estimate.routerSeconds,
          totalSeconds: plan.estimate.totalSeconds,
          sampleEpochsPerSecond: plan.estimate.rate.sampleEpochsPerSecond,
          rateSource: plan.estimate.rate.source,
          rateMeasuredAt: new Date(plan.estimate.rate.measuredAt),
        }
      : undefined,
  };
}

/** The stored receipt document as the API's Receipt (epochs 1-based, as the proto counts). */
export function toProtoReceipt(receipt: StoredReceipt, jobId: string, object?: ObjectRef): Receipt {
  if (isSisaReceipt(receipt)) return toProtoSisaReceipt(receipt, jobId, object);
  if (isSampleForgetReceipt(receipt)) return toProtoSampleReceipt(receipt, jobId, object);
  return toProtoApproximateReceipt(receipt, jobId, object);
}

function toProtoApproximateReceipt(
  receipt: ForgetReceipt,
  jobId: string,
  object?: ObjectRef,
): Receipt {
  const r = receipt.request;
  return {
    schema: receipt.schema,
    requestId: receipt.requestId,
    createdAt: new Date(receipt.createdAt),
    request: requestRecord(r),
    mode:
      r.method === 'retrain' ? ForgetMode.FORGET_MODE_EXACT : ForgetMode.FORGET_MODE_APPROXIMATE,
    plan: plan(receipt.plan),
    expertsRetrained: receipt.expertsRetrained,
    partsChanged: receipt.partsChanged,
    weights: { before: receipt.weights.before, after: receipt.weights.after },
    manifest: { before: receipt.manifest.before, after: receipt.manifest.after },
    suppressClasses: receipt.suppressClasses,
    metrics: { before: metrics(receipt.metrics.before), after: metrics(receipt.metrics.after) },
    timings: receipt.timings,
    engine: receipt.engine,
    history: receipt.history.map((h) => ({
      epoch: h.epoch + 1,
      loss: h.loss,
      accuracy: h.accuracy,
      seconds: h.seconds,
    })),
    frozenExpertPasses: receipt.frozenExpertPasses,
    sisa: undefined,
    jobId,
    object,
  };
}
