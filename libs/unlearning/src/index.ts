// Public face of @lethe/unlearning: forget planning (which experts saw the data), targeted
// retraining and its baselines, the measurements that show what was forgotten, and receipts.
export {
  type SelectionRule,
  DEFAULT_SELECTION,
  parseSelectionRule,
  formatSelectionRule,
  selectExperts,
} from '@lethe/metrics';
export {
  type ClassForgetPlan,
  type TrainingRouting,
  planClassForget,
  routeTrainingSet,
  routedTo,
} from './forget-plan';
export { FrozenExpertCache } from './frozen-expert-cache';
export {
  FORGET_METHODS,
  UNLEARNING_LOSSES,
  type ForgetMethod,
  type UnlearningLoss,
  type ForgetRun,
  type RemoteExperts,
  type ForgetOutcome,
  type TrainingRecipe,
  runForgetMethod,
} from './forget-methods';
export { type ModelOutputs, modelOutputs, internalFeatures, evaluationOf } from './model-outputs';
export {
  OutputMemo,
  type OutputMemos,
  outputsKey,
  loadOutputMemos,
  saveOutputMemos,
  pruneOutputMemos,
  weightHashes,
} from './output-memo';
export {
  type ForgetMetrics,
  type MeasureOptions,
  type MeasuredOn,
  type MeasureMode,
  MEASURE_MODES,
  SAMPLE_MEASURE,
  measureForgetting,
  measurePositions,
  measureSample,
} from './measure-forgetting';
export {
  type ForgetReceipt,
  type ClassForgetRequestRecord,
  assertValidRequestId,
  isClassReceipt,
  isSampleForgetReceipt,
  isSisaReceipt,
  readReceipt,
  listReceipts,
  parseReceipt,
  receiptKind,
  receiptObjectName,
  type StoredReceipt,
} from './receipt';
export {
  type ClassForgetRequest,
  type ClassForgetContext,
  type ForgetPreview,
  DEFAULT_FORGET_RECIPE,
  ForgetRequestError,
  forgetClass,
  RESIDUAL_CLASS_ACCURACY,
  residualClassWarning,
  previewClassForget,
} from './class-forget-job';
export { type ForgetEstimate } from './forget-estimate';
export {
  SAMPLE_FORGET_METHODS,
  type SampleForgetMethod,
  type SampleForgetRun,
  runSampleForgetMethod,
} from './sample-forget-methods';
export {
  type SampleForgetMetrics,
  heldOutLoss,
  measureSampleForgetting,
  sampleMeasurePositions,
} from './measure-samples';
export {
  type SampleForgetRequest,
  type SampleForgetRequestRecord,
  type SampleForgetPlan,
  type SampleForgetReceipt,
  type SampleForgetContext,
  type SampleForgetPreview,
  DEFAULT_SAMPLE_FORGET_RECIPE,
  forgetJointSamples,
  previewSampleForget,
} from './sample-forget-job';
export { defaultOutputThreads, fillMemosInThreads } from './output-threads';
