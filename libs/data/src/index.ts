// Public face of @lethe/data: datasets as typed arrays (no TensorFlow.js here; libs/model makes
// tensors), stable sample ids for forgetting, seeded batching, and dataset download.
export { DataError } from './errors';
export {
  type Dataset,
  type SampleRef,
  type Split,
  type FilterByClassOptions,
  sampleId,
  formatSampleId,
  parseSampleId,
  findSample,
  positionOfIndex,
  subset,
  filterByClass,
  resolveClass,
  identityIndices,
  validateDataset,
} from './dataset';
export {
  type Cifar100Options,
  type CifarReadOptions,
  CIFAR_BATCH_RECORDS,
  readCifar10,
  readCifar100,
  CIFAR10_RECORD_BYTES,
  CIFAR100_RECORD_BYTES,
} from './cifar';
export { type ImageFolderOptions, readImageFolder } from './image-folder';
export {
  type DatasetScheme,
  type DatasetSpec,
  DATASET_SCHEMES,
  openDataset,
  parseDatasetSpec,
} from './open';
export { type ChannelStats, type Rgb, channelStats, CIFAR10_STATS, CIFAR100_STATS } from './stats';
export {
  type AugmentOptions,
  type Batch,
  type BatchOptions,
  type GatherOptions,
  BatchSampler,
  batches,
  epochPermutation,
  gatherBatch,
} from './batches';
export { type Rng, createRng, deriveSeed } from './rng';
export {
  type FetchDatasetOptions,
  type FetchLike,
  type FetchResponseLike,
  type FetchResult,
  type RemoteDatasetName,
  REMOTE_DATASETS,
  fetchDataset,
} from './fetch';
export { type SyntheticOptions, SYNTHETIC_CLASSES, makeSyntheticDataset } from './synthetic';
export { limitTrainingSet, defaultNormalisation } from './training-subset';
export { writeCifar10 } from './cifar-writer';
