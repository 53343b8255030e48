// The report's input is plain data so this lib needs neither TensorFlow.js nor @lethe/unlearning
// (which depends on it); apps map a manifest and its receipts into it. Percentages are 0–100
// throughout, as everywhere in @lethe/metrics.
import type { RoutingHealth } from '../routing-health';

/** One epoch of a training or retraining run. */
export interface ReportEpoch {
  /** 1-based, as the progress lines count epochs. */
  epoch: number;
  loss: number;
  /** Accuracy on the epoch's training batches, percent. */
  accuracy: number;
  seconds: number;
}

export interface ReportModel {
  preset: string;
  experts: number;
  topK: number;
  /** Class names in class-index order. */
  classes: string[];
  /** Engine the model was trained with (wasm, node, gpu...). */
  engine?: string;
  manifestRevision?: number;
  /** Classes the served output never predicts. */
  suppressClasses?: number[];
  /** Class names already forgotten. */
  forgotten?: string[];
}

export interface ReportTraining {
  dataset?: string;
  trainSize?: number;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  /** Test accuracy after training, percent. */
  testAccuracy?: number;
  seconds?: number;
  history: ReportEpoch[];
  /** Routing health on the test split after training (docs/metrics.md). */
  routingHealth?: RoutingHealth;
}

/** What one model measured about the forgotten class; see docs/metrics.md. */
export interface ReportForgetMetrics {
  ua: number;
  ra: number;
  ta: number;
  forgottenClassTestAccuracy: number;
  miaEfficacy: number;
  /** Absent when the forget was measured on a sample (docs/metrics.md). */
  featureProbe?: number;
  /** Test accuracy per class, percent, in class-index order. */
  perClassTest: number[];
  /** [class][expert] routing counts on the test set. */
  routingTest: number[][];
}

/** One completed forget request (a receipt). */
export interface ReportForget {
  requestId: string;
  createdAt: string;
  classIndex: number;
  className: string;
  method: string;
  mode: string;
  loss?: string;
  expertsRetrained: number[];
  partsChanged: string[];
  /** SHA-256 of each part's weights object, before and after. */
  weights: { before: Record<string, string>; after: Record<string, string> };
  metrics: { before: ReportForgetMetrics; after: ReportForgetMetrics };
  timings: {
    planSeconds: number;
    forgetSeconds: number;
    measureSeconds: number;
    totalSeconds: number;
  };
  /** Retraining epochs; empty for methods that do not retrain. */
  history: ReportEpoch[];
  engine?: string;
}

/** UA, RA, TA and MIA-Efficacy on a set of forgotten samples, percent (docs/metrics.md). */
export interface ReportErasureMetrics {
  ua: number;
  ra: number;
  ta: number;
  miaEfficacy: number;
}

/** One completed sample or subject erasure (a sample-forget or sisa receipt): a table row. */
export interface ReportErasure {
  requestId: string;
  createdAt: string;
  /** `approximate` (a joint model's sample forget) or `exact` (a sisa replay). */
  mode: string;
  /** The method (neggrad+, scrub, …) or `sisa replay`. */
  method: string;
  samples: number;
  subjects: string[];
  /** What was retrained, in words: the experts and router, or the shards replayed. */
  retrained: string;
  /** Approximate erasures: the evidence before and after. Exact ones need none. */
  metrics?: { before: ReportErasureMetrics; after: ReportErasureMetrics };
  totalSeconds: number;
}

export interface ReportInput {
  title: string;
  /** Where the data came from (a store description), shown under the title. */
  source?: string;
  /** ISO time shown in the report; default now. */
  generatedAt?: string;
  model: ReportModel;
  training?: ReportTraining;
  /** Oldest first. */
  forgets: ReportForget[];
  /** Sample and subject erasures, oldest first. */
  erasures?: ReportErasure[];
}

export interface ReportOutput {
  /** Path of report.html. */
  html: string;
  /** Paths of the PNG charts, in the order the report shows them. */
  charts: string[];
}
