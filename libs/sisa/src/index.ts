// Public face of @lethe/sisa: exact forgetting by shard/slice replay (SISA), with checkpoints
// addressed by the hash of the samples they saw, and verification from the store alone.
export {
  type SisaLayout,
  type ShardAssignment,
  planLayout,
  withoutSamples,
  slotsByIndex,
  prefix,
} from './layout';
export {
  type ShardRecipe,
  type CheckpointRecord,
  lineageHash,
  readCheckpoint,
  listCheckpoints,
  readLineageIndices,
} from './checkpoints';
export {
  type SisaRecipe,
  type ShardReport,
  type SisaProgress,
  type SisaTrainingResult,
  type ShardTrainer,
  localShardTrainer,
  trainShard,
  trainSisa,
} from './sisa-training';
export { DEFAULT_SISA_OPTIONS, defaultEpochs, defaultTopK } from './training-defaults';
export {
  type SisaRecord,
  type SisaTrainOptions,
  type SisaReceipt,
  type LoadedSisa,
  type VerifyResult,
  type SisaForgetRequest,
  type SisaBatchOutcome,
  type SisaRate,
  type SisaForgetPlan,
  SisaRequestError,
  planSisaForget,
  planSisaReplay,
  trainSisaModel,
  forgetSamples,
  replayBatch,
  loadSisa,
  verifyForgetting,
} from './sisa-model';
export { type SisaForgetQueueOptions, SisaForgetQueue, ForgetCancelledError } from './forget-queue';
export { type VoteOptions, type VoteEvaluation, evaluateVote } from './vote';
export {
  MAX_FORGET_WINDOW_MS,
  type ForgetClock,
  systemClock,
  checkForgetWindow,
  ForgetWindow,
} from './forget-window';
