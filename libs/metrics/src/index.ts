// Public face of @lethe/metrics: evidence that forgetting happened, computed from plain arrays
// of model outputs (no TensorFlow.js here; libs/unlearning runs the model and passes results).
// Every accuracy-like number is a percentage in [0, 100]; see docs/metrics.md.
export { MetricsError } from './errors';
export type { Mask } from './validate';
export type { FeatureMatrix } from './feature-matrix';
export {
  type ClassAccuracy,
  type ForgetReport,
  type ForgetReportInput,
  type Predictions,
  accuracy,
  confusionMatrix,
  forgetReport,
  perClassAccuracy,
} from './accuracy';
export {
  type LogisticRegressionModel,
  type LogisticRegressionOptions,
  type LogisticSolver,
  decisionFunction,
  fitLogisticRegression,
  predictLogistic,
  predictProbability,
} from './logistic-regression';
export {
  type MiaFeature,
  type MiaInput,
  type MiaOptions,
  type MiaResult,
  type ProbabilitySet,
  miaEfficacy,
  miaFeatures,
  rocAuc,
  softmax,
} from './membership-inference';
export { type FeatureProbeInput, type FeatureProbeResult, featureProbe } from './feature-probe';
export {
  type ReportEpoch,
  type ReportErasure,
  type ReportErasureMetrics,
  type ReportForget,
  type ReportForgetMetrics,
  type ReportInput,
  type ReportModel,
  type ReportOutput,
  type ReportTraining,
  writeReport,
} from './report';
export {
  type SelectionRule,
  DEFAULT_SELECTION,
  parseSelectionRule,
  formatSelectionRule,
  selectExperts,
} from './expert-selection';
export {
  type RoutingHealth,
  DEAD_EXPERT_SHARE,
  routingHealth,
  formatRoutingHealth,
} from './routing-health';
