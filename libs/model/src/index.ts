export { PRESETS, getPreset, type ModelPreset, type ConvNetSpec, type ConvStage } from './presets';
export {
  MoEModel,
  DEFAULT_MOE_CONFIG,
  DEFAULT_SPECIALIZE_WEIGHT,
  DEFAULT_ROUTER_NOISE,
  MAX_SPECIALIZE_WEIGHT,
  type MoEConfig,
  type ModulePart,
  type ForwardResult,
  type ForwardOptions,
  type TaskLoss,
  type ExpertLogitsProvider,
  type StepResult,
  type TrainOptions,
  type MoETrainingState,
} from './moe-model';
export {
  routeTopK,
  loadBalancingLoss,
  slotDistribution,
  specializationLoss,
  type Routing,
} from './gating';
export {
  crossEntropy,
  complementCrossEntropy,
  perSampleCrossEntropy,
  perSampleComplementCrossEntropy,
} from './losses';
export { AdamW, type AdamWConfig } from './optim/adamw';
export { serializeParameters, deserializeParameters, readWeightsHeader } from './serialization';
export {
  evaluate,
  evaluationFrom,
  batchToTensor,
  type ArrayBatch,
  type Evaluation,
} from './evaluation';
export { ConvNet } from './layers/conv-net';
export { ParameterCollection } from './layers/parameters';
export { learningRateAt, type ScheduleName, type ScheduleConfig } from './training/learning-rate';
export {
  trainModel,
  type TrainingRun,
  type StepProgress,
  type EpochSummary,
  type StepExecutor,
  type StepContext,
} from './training/trainer';
export {
  saveModel,
  storeParts,
  publishModel,
  loadModel,
  readModelCard,
  type ModelCard,
  type SaveOptions,
  type LoadedModel,
} from './persistence';
export {
  TRAINING_ATTRIBUTE,
  trainingRecordSchema,
  readTrainingRecord,
  recordedTrainingRate,
  type TrainingRecord,
  type SisaTrainingRecord,
} from './training-record';
export {
  ExpertTrainer,
  createExpertNet,
  encodeOptimizerState,
  decodeOptimizerState,
  type ExpertSpec,
  type ExpertStepResult,
} from './distributed/expert-trainer';
export type { AdamWState } from './optim/adamw';
