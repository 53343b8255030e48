import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import {
  type ChannelStats,
  DataError,
  type Dataset,
  gatherBatch,
  limitTrainingSet,
  openDataset,
  parseDatasetSpec,
  positionOfIndex,
  type Split,
} from '@lethe/data';
import { ExpertTrainer, getPreset, readWeightsHeader } from '@lethe/model';
import { getVerified, type ObjectRef, type ObjectStore, putContent, sha256Hex } from '@lethe/store';
import * as tf from '@tensorflow/tfjs-core';
import { bytesOf, firstNonFinite, normaliseImages, type RawImage } from './tensors';

/**
 * The experts, datasets and pending training steps a worker holds, and the rules of the Worker
 * service (proto/lethe/v1/worker.proto) over them. No gRPC here: a failure is a HostError whose
 * code is the name of the gRPC status the service answers with.
 */

export type HostErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'DATA_LOSS'
  | 'UNIMPLEMENTED'
  /** The thread holding the host stopped (host-thread.ts). */
  | 'UNAVAILABLE';

export class HostError extends Error {
  override readonly name = 'HostError';

  constructor(
    readonly code: HostErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const fail = (code: HostErrorCode, message: string): never => {
  throw new HostError(code, message);
};

export const MAX_FORWARD_INDICES = 65_536;
export const MAX_PREDICT_IMAGES = 512;
export const MAX_CROP = 16;

/** The architecture every expert shares (ModelSpec), with normalisation required. */
export interface ModelSpec {
  preset: string;
  numClasses: number;
  inputShape: [number, number, number];
  normalisation: ChannelStats;
  experts: number;
  seed: number;
}

export interface ExpertAssignment {
  expertId: number;
  weights?: ObjectRef;
  optimizerState?: ObjectRef;
  lastStepId: number;
}

export interface LoadedExpert {
  expertId: number;
  weightsSha256: string;
  parameters: number;
}

export interface DatasetSource {
  /** `<scheme>:<dir>`, as the CLI's --data. */
  uri: string;
  split: Split;
  /** Seeded subset of this many samples; 0 for all. */
  limit: number;
}

export interface DatasetInfo {
  key: string;
  name: string;
  samples: number;
  classes: string[];
  imageShape: [number, number, number];
  contentSha256: string;
}

export interface Augmentation {
  crop: number;
  flip: boolean;
  seed: number;
  epoch: number;
}

export interface ForwardInput {
  stepId: number;
  expertId: number;
  datasetKey: string;
  indices: readonly number[];
  training: boolean;
  augmentation?: Augmentation;
  /** Training with batch norm on its moving statistics (forgetting on a skewed subset). */
  frozenBatchNorm?: boolean;
}

export interface Logits {
  values: Float32Array;
  shape: [number, number];
}

export interface BackwardInput {
  stepId: number;
  expertId: number;
  gradient: Float32Array;
  shape: readonly number[];
  learningRate: number;
  weightDecay: number;
}

export interface BackwardResult {
  alreadyApplied: boolean;
  gradientNorm: number;
}

export interface CheckpointResult {
  weights: ObjectRef;
  optimizerState: ObjectRef;
  lastStepId: number;
}

export interface ReleaseInput {
  expertIds: readonly number[];
  datasetKeys: readonly string[];
  all: boolean;
}

export interface HostLoad {
  expertIds: number[];
  /** Bytes of tensors plus datasets held. */
  memoryUsedBytes: number;
  /** Milliseconds spent computing since the host was made. */
  busyMs: number;
  /** Tensors alive in this host's engine (its thread's), for leak checks. */
  tensors: number;
}

export interface ExpertHostOptions {
  /** Where checkpoints are written and read; without one, Checkpoint and loading fail. */
  store?: ObjectStore;
  /** Experts held at once (Capacity.max_experts). */
  maxExperts: number;
  /**
   * Another host whose datasets this one uses (the serving copy shares the training copy's):
   * a dataset is held once per worker, whichever copy loaded it.
   */
  shareDatasetsWith?: ExpertHost;
}

/** A training Forward awaiting its Backward: the images it ran on, kept as a tensor. */
interface PendingStep {
  stepId: number;
  x: tf.Tensor4D;
  rows: number;
  frozenBatchNorm: boolean;
}

interface HeldExpert {
  trainer: ExpertTrainer;
  lastStepId: number;
  pending?: PendingStep;
  /** Cached hash of the serialised weights; cleared when they change. */
  sha256?: string;
}

/** A dataset as held: also what crosses to the serving thread (structured-cloneable). */
export interface HeldDataset {
  /** What was loaded, to make a repeated LoadDataset a no-op. */
  sourceKey: string;
  dataset: Dataset;
  info: DatasetInfo;
}

export class ExpertHost {
  private model: ModelSpec | undefined;
  private readonly experts = new Map<number, HeldExpert>();
  private readonly datasets: Map<string, HeldDataset>;
  private busyMs = 0;
  /** Serialises the calls that await I/O between checking and changing state. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: ExpertHostOptions) {
    this.datasets = options.shareDatasetsWith?.datasets ?? new Map<string, HeldDataset>();
  }

  get maxExperts(): number {
    return this.options.maxExperts;
  }

  /** AssignExperts. */
  assignExperts(
    model: ModelSpec,
    assignments: readonly ExpertAssignment[],
    replaceAll: boolean,
  ): Promise<LoadedExpert[]> {
    return this.exclusive(() => this.doAssign(model, assignments, replaceAll));
  }

  private async doAssign(
    model: ModelSpec,
    assignments: readonly ExpertAssignment[],
    replaceAll: boolean,
  ): Promise<LoadedExpert[]> {
    validateModel(model);
    if (assignments.length === 0) fail('INVALID_ARGUMENT', 'experts: at least one expert to load');
    const ids = new Set<number>();
    for (const { expertId } of assignments) {
      if (ids.has(expertId)) fail('INVALID_ARGUMENT', `experts: duplicate expert_id ${expertId}`);
      if (expertId >= model.experts) {
        fail(
          'INVALID_ARGUMENT',
          `experts: expert_id ${expertId} >= model.experts ${model.experts}`,
        );
      }
      ids.add(expertId);
    }
    // A different architecture or seed is another model: what is held belongs to the old one.
    const sameModel = this.model !== undefined && modelKey(this.model) === modelKey(model);
    const kept = sameModel
      ? [...this.experts.keys()].filter((id) => !replaceAll || ids.has(id))
      : [];
    const after = new Set([...kept, ...ids]);
    if (after.size > this.options.maxExperts) {
      fail(
        'RESOURCE_EXHAUSTED',
        `${after.size} experts requested, this worker holds at most ${this.options.maxExperts}`,
      );
    }

    // Build every new expert first: on any failure nothing held changes.
    const built = new Map<number, HeldExpert>();
    try {
      for (const assignment of assignments) {
        const held = sameModel ? this.experts.get(assignment.expertId) : undefined;
        if (held && assignment.weights && this.weightsSha256(held) === assignment.weights.sha256) {
          continue;
        }
        const fresh = await this.buildExpert(model, assignment);
        if (held && !assignment.weights && this.weightsSha256(held) === fresh.sha256) {
          fresh.trainer.dispose();
          continue;
        }
        built.set(assignment.expertId, fresh);
      }
    } catch (error) {
      for (const expert of built.values()) expert.trainer.dispose();
      throw error;
    }

    // Commit.
    for (const [id, expert] of [...this.experts]) {
      if (!sameModel || built.has(id) || (replaceAll && !ids.has(id))) {
        this.dropExpert(id, expert);
      }
    }
    for (const [id, expert] of built) this.experts.set(id, expert);
    this.model = model;
    return this.heldExperts();
  }

  private async buildExpert(model: ModelSpec, assignment: ExpertAssignment): Promise<HeldExpert> {
    const { expertId } = assignment;
    const readRef = async (ref: ObjectRef, what: string): Promise<Uint8Array> => {
      const store = this.options.store;
      if (!store) {
        return fail(
          'FAILED_PRECONDITION',
          `expert ${expertId}: ${what} given but this worker has no object store (--store)`,
        );
      }
      try {
        return await getVerified(store, ref);
      } catch (error) {
        throw storeError(error, `expert ${expertId} ${what}`);
      }
    };
    const weights = assignment.weights ? await readRef(assignment.weights, 'weights') : undefined;
    const optimizer = assignment.optimizerState
      ? await readRef(assignment.optimizerState, 'optimizer_state')
      : undefined;
    const started = performance.now();
    const trainer = new ExpertTrainer(
      {
        preset: model.preset,
        inputShape: model.inputShape,
        numClasses: model.numClasses,
        seed: model.seed,
      },
      expertId,
    );
    try {
      if (weights) {
        const label = readWeightsHeader(weights).label;
        if (label !== trainer.net.params.label) {
          throw new Error(`they are the weights of ${label}, not ${trainer.net.params.label}`);
        }
        trainer.loadWeights(weights);
      }
      if (optimizer) trainer.loadOptimizer(optimizer);
    } catch (error) {
      trainer.dispose();
      return fail(
        'INVALID_ARGUMENT',
        `expert ${expertId}: checkpoint does not fit the model spec: ${messageOf(error)}`,
      );
    }
    const held: HeldExpert = { trainer, lastStepId: assignment.lastStepId };
    held.sha256 = sha256Hex(trainer.serializeWeights());
    this.busyMs += performance.now() - started;
    return held;
  }

  /** LoadDataset. */
  loadDataset(key: string, source: DatasetSource): Promise<DatasetInfo> {
    return this.exclusive(() => this.doLoadDataset(key, source));
  }

  private async doLoadDataset(key: string, source: DatasetSource): Promise<DatasetInfo> {
    if (key === '') fail('INVALID_ARGUMENT', 'key: empty');
    const sourceKey = JSON.stringify([source.uri, source.split, source.limit]);
    const held = this.datasets.get(key);
    if (held?.sourceKey === sourceKey) return held.info;

    let dir: string;
    try {
      dir = parseDatasetSpec(source.uri).dir;
    } catch (error) {
      return fail('INVALID_ARGUMENT', `dataset.uri: ${messageOf(error)}`);
    }
    try {
      await stat(dir);
    } catch {
      fail('NOT_FOUND', `dataset.uri: directory ${dir} does not exist`);
    }
    let dataset: Dataset;
    try {
      dataset = limitDataset(await openDataset(source.uri, source.split), source.limit);
    } catch (error) {
      if (error instanceof DataError) {
        const missing = /missing|not found/.test(error.problem);
        return fail(missing ? 'NOT_FOUND' : 'INVALID_ARGUMENT', `dataset: ${error.message}`);
      }
      throw error;
    }
    const started = performance.now();
    const info: DatasetInfo = {
      key,
      name: dataset.name,
      samples: dataset.size,
      classes: [...dataset.classes],
      imageShape: [dataset.height, dataset.width, dataset.channels],
      contentSha256: datasetSha256(dataset),
    };
    this.busyMs += performance.now() - started;
    this.datasets.set(key, { sourceKey, dataset, info });
    return info;
  }

  /** Forward. Synchronous: it runs to completion before any other call. */
  forward(input: ForwardInput): Logits {
    const { indices, training, augmentation } = input;
    if (indices.length === 0) fail('INVALID_ARGUMENT', 'indices: empty');
    if (indices.length > MAX_FORWARD_INDICES) {
      fail(
        'INVALID_ARGUMENT',
        `indices: ${indices.length} given, at most ${MAX_FORWARD_INDICES} per call`,
      );
    }
    if (augmentation && !training) {
      fail('INVALID_ARGUMENT', 'augmentation: only for training forwards');
    }
    if (augmentation && augmentation.crop > MAX_CROP) {
      fail('INVALID_ARGUMENT', `augmentation.crop: ${augmentation.crop} > ${MAX_CROP}`);
    }
    const expert = this.expert(input.expertId);
    const model = this.model!;
    const held = this.datasets.get(input.datasetKey);
    if (!held) return fail('NOT_FOUND', `dataset_key: '${input.datasetKey}' is not loaded`);
    if (training && input.stepId <= expert.lastStepId) {
      fail(
        'FAILED_PRECONDITION',
        `step_id ${input.stepId} is not greater than expert ${input.expertId}'s last applied ` +
          `step ${expert.lastStepId}`,
      );
    }
    const { dataset } = held;
    const [h, w, c] = model.inputShape;
    if (dataset.height !== h || dataset.width !== w || dataset.channels !== c) {
      fail(
        'INVALID_ARGUMENT',
        `dataset '${input.datasetKey}' holds ${dataset.height}x${dataset.width}x${dataset.channels} ` +
          `images, the model takes ${h}x${w}x${c}`,
      );
    }
    const positions = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const p = positionOfIndex(dataset, indices[i]!);
      if (p < 0) {
        fail('NOT_FOUND', `indices: ${indices[i]} is not in dataset '${input.datasetKey}'`);
      }
      positions[i] = p;
    }

    const started = performance.now();
    const batch = gatherBatch(dataset, positions, {
      normalise: model.normalisation,
      ...(augmentation
        ? {
            augment: { crop: augmentation.crop, flip: augmentation.flip },
            seed: augmentation.seed,
            epoch: augmentation.epoch,
          }
        : {}),
    });
    const n = indices.length;
    const x = tf.tensor4d(batch.x, [n, h, w, c]);
    const frozenBatchNorm = input.frozenBatchNorm ?? false;
    const logits = expert.trainer.forward(x, training, frozenBatchNorm);
    const values = new Float32Array(logits.dataSync());
    logits.dispose();
    if (training) {
      // A newer training Forward (or a retry of this one) replaces what was kept.
      expert.pending?.x.dispose();
      expert.pending = { stepId: input.stepId, x, rows: n, frozenBatchNorm };
    } else {
      x.dispose();
    }
    this.busyMs += performance.now() - started;
    return { values, shape: [n, model.numClasses] };
  }

  /** Backward. Synchronous. */
  backward(input: BackwardInput): BackwardResult {
    const { learningRate, weightDecay, gradient, shape } = input;
    if (!(learningRate > 0) || !Number.isFinite(learningRate)) {
      fail('INVALID_ARGUMENT', `learning_rate: must be > 0 and finite, got ${learningRate}`);
    }
    if (!(weightDecay >= 0) || !Number.isFinite(weightDecay)) {
      fail('INVALID_ARGUMENT', `weight_decay: must be >= 0 and finite, got ${weightDecay}`);
    }
    const bad = firstNonFinite(gradient);
    if (bad >= 0) {
      fail('INVALID_ARGUMENT', `logit_gradients: non-finite value ${gradient[bad]} at ${bad}`);
    }
    const expert = this.expert(input.expertId);
    if (input.stepId <= expert.lastStepId) return { alreadyApplied: true, gradientNorm: 0 };
    const pending = expert.pending;
    if (pending?.stepId !== input.stepId) {
      fail(
        'FAILED_PRECONDITION',
        `no pending training Forward of step ${input.stepId} for expert ${input.expertId}` +
          (pending ? ` (the pending one is step ${pending.stepId})` : '') +
          ': redo the step',
      );
    }
    const classes = this.model!.numClasses;
    if (shape.length !== 2 || shape[0] !== pending!.rows || shape[1] !== classes) {
      fail(
        'INVALID_ARGUMENT',
        `logit_gradients: shape [${shape.join(', ')}] differs from the Forward's logits ` +
          `[${pending!.rows}, ${classes}]`,
      );
    }
    const started = performance.now();
    const grad = tf.tensor2d(gradient, [pending!.rows, classes]);
    let gradientNorm: number;
    try {
      ({ gradientNorm } = expert.trainer.backward(pending!.x, grad, {
        learningRate,
        weightDecay,
        frozenBatchNorm: pending!.frozenBatchNorm,
      }));
    } finally {
      grad.dispose();
    }
    pending!.x.dispose();
    expert.pending = undefined;
    expert.lastStepId = input.stepId;
    expert.sha256 = undefined;
    this.busyMs += performance.now() - started;
    return { alreadyApplied: false, gradientNorm };
  }

  /** Predict: inference on images sent with the call. */
  predict(expertId: number, images: readonly RawImage[]): Logits {
    if (images.length === 0) fail('INVALID_ARGUMENT', 'images: empty');
    if (images.length > MAX_PREDICT_IMAGES) {
      fail('INVALID_ARGUMENT', `images: ${images.length} given, at most ${MAX_PREDICT_IMAGES}`);
    }
    const expert = this.expert(expertId);
    const model = this.model!;
    const [h, w, c] = model.inputShape;
    images.forEach((image, i) => {
      if (image.height !== h || image.width !== w || image.channels !== c) {
        fail(
          'INVALID_ARGUMENT',
          `images[${i}]: ${image.height}x${image.width}x${image.channels}, the model takes ${h}x${w}x${c}`,
        );
      }
      if (image.data.length !== h * w * c) {
        fail(
          'INVALID_ARGUMENT',
          `images[${i}]: ${image.data.length} bytes of data, expected ${h * w * c}`,
        );
      }
    });
    const started = performance.now();
    const n = images.length;
    const x = tf.tensor4d(normaliseImages(images, model.normalisation), [n, h, w, c]);
    const logits = expert.trainer.forward(x, false);
    const values = new Float32Array(logits.dataSync());
    tf.dispose([x, logits]);
    this.busyMs += performance.now() - started;
    return { values, shape: [n, model.numClasses] };
  }

  /** Checkpoint: weights and optimizer state into the store. */
  async checkpoint(expertId: number): Promise<CheckpointResult> {
    const expert = this.expert(expertId);
    if (expert.pending) {
      fail(
        'FAILED_PRECONDITION',
        `expert ${expertId}: the training Forward of step ${expert.pending.stepId} awaits its Backward`,
      );
    }
    const store = this.options.store;
    if (!store) {
      return fail('FAILED_PRECONDITION', 'this worker has no object store to write to (--store)');
    }
    // Snapshot synchronously, so the bytes and last_step_id belong together.
    const weights = expert.trainer.serializeWeights();
    const optimizer = expert.trainer.serializeOptimizer();
    const lastStepId = expert.lastStepId;
    const weightsRef = await putContent(store, weights, { kind: 'expert' });
    const optimizerRef = await putContent(store, optimizer, { kind: 'optimizer' });
    return { weights: weightsRef, optimizerState: optimizerRef, lastStepId };
  }

  /** Release. */
  release(input: ReleaseInput): { releasedExpertIds: number[]; releasedDatasetKeys: string[] } {
    if (!input.all && input.expertIds.length === 0 && input.datasetKeys.length === 0) {
      fail('INVALID_ARGUMENT', 'name expert_ids, dataset_keys, or set all');
    }
    const expertIds = input.all ? [...this.experts.keys()] : input.expertIds;
    const keys = input.all ? [...this.datasets.keys()] : input.datasetKeys;
    const releasedExpertIds: number[] = [];
    for (const id of new Set(expertIds)) {
      const expert = this.experts.get(id);
      if (!expert) continue;
      this.dropExpert(id, expert);
      releasedExpertIds.push(id);
    }
    const releasedDatasetKeys: string[] = [];
    for (const key of new Set(keys)) {
      if (this.datasets.delete(key)) releasedDatasetKeys.push(key);
    }
    return { releasedExpertIds: releasedExpertIds.sort((a, b) => a - b), releasedDatasetKeys };
  }

  /**
   * The dataset held under `key` with its arrays moved into shared memory (once), so that the
   * serving thread reads the same bytes without a copy; undefined when none is held.
   */
  sharedDataset(key: string): HeldDataset | undefined {
    const held = this.datasets.get(key);
    if (!held || held.dataset.images.buffer instanceof SharedArrayBuffer) return held;
    const share = <T extends Uint8Array | Int32Array>(array: T): T => {
      const shared = new (array.constructor as new (buffer: SharedArrayBuffer) => T)(
        new SharedArrayBuffer(array.byteLength),
      );
      shared.set(array);
      return shared;
    };
    const { dataset } = held;
    const moved: HeldDataset = {
      ...held,
      dataset: {
        ...dataset,
        images: share(dataset.images),
        labels: share(dataset.labels),
        indices: share(dataset.indices),
        ...(dataset.coarseLabels ? { coarseLabels: share(dataset.coarseLabels) } : {}),
      },
    };
    this.datasets.set(key, moved);
    return moved;
  }

  /** Holds `held` under `key` as if loaded here (the serving thread's copy of a dataset). */
  adoptDataset(key: string, held: HeldDataset): void {
    this.datasets.set(key, held);
  }

  /** Keys of the datasets held. */
  datasetKeys(): string[] {
    return [...this.datasets.keys()];
  }

  /** Experts held, by id. */
  heldExperts(): LoadedExpert[] {
    return [...this.experts.entries()]
      .sort(([a], [b]) => a - b)
      .map(([expertId, expert]) => ({
        expertId,
        weightsSha256: this.weightsSha256(expert),
        parameters: expert.trainer.parameters,
      }));
  }

  /** The last Backward step applied to an expert, or undefined when it is not held. */
  lastStepId(expertId: number): number | undefined {
    return this.experts.get(expertId)?.lastStepId;
  }

  load(): HostLoad {
    let datasetBytes = 0;
    for (const { dataset } of this.datasets.values()) {
      datasetBytes +=
        dataset.images.byteLength + dataset.labels.byteLength + dataset.indices.byteLength;
    }
    return {
      expertIds: [...this.experts.keys()].sort((a, b) => a - b),
      memoryUsedBytes: tf.memory().numBytes + datasetBytes,
      busyMs: this.busyMs,
      tensors: tf.memory().numTensors,
    };
  }

  /** Frees every tensor held. */
  dispose(): void {
    for (const [id, expert] of [...this.experts]) this.dropExpert(id, expert);
    this.datasets.clear();
  }

  private expert(expertId: number): HeldExpert {
    const expert = this.experts.get(expertId);
    if (!expert) return fail('NOT_FOUND', `expert ${expertId} is not assigned to this worker`);
    return expert;
  }

  private weightsSha256(expert: HeldExpert): string {
    expert.sha256 ??= sha256Hex(expert.trainer.serializeWeights());
    return expert.sha256;
  }

  private dropExpert(id: number, expert: HeldExpert): void {
    expert.pending?.x.dispose();
    expert.trainer.dispose();
    this.experts.delete(id);
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function validateModel(model: ModelSpec): void {
  try {
    getPreset(model.preset);
  } catch (error) {
    fail('INVALID_ARGUMENT', `model.preset: ${messageOf(error)}`);
  }
  if (!Number.isInteger(model.numClasses) || model.numClasses < 2) {
    fail('INVALID_ARGUMENT', `model.num_classes: must be >= 2, got ${model.numClasses}`);
  }
  const [h, w, c] = model.inputShape;
  if (model.inputShape.length !== 3 || !(h! >= 1 && w! >= 1) || c !== 3) {
    fail(
      'INVALID_ARGUMENT',
      `model.input_shape: expected [height, width, 3], got [${model.inputShape.join(', ')}]`,
    );
  }
  if (!Number.isInteger(model.experts) || model.experts < 1) {
    fail('INVALID_ARGUMENT', `model.experts: must be >= 1, got ${model.experts}`);
  }
  const { mean, std } = model.normalisation;
  if (
    mean.length !== 3 ||
    std.length !== 3 ||
    !mean.every(Number.isFinite) ||
    !std.every((s) => Number.isFinite(s) && s > 0)
  ) {
    fail(
      'INVALID_ARGUMENT',
      'model.normalisation: needs 3 finite means and 3 finite standard deviations > 0',
    );
  }
}

function modelKey(model: ModelSpec): string {
  return JSON.stringify([
    model.preset,
    model.numClasses,
    model.inputShape,
    model.experts,
    model.seed,
  ]);
}

/**
 * The seeded subset DatasetSpec.limit asks for. DatasetSpec carries no seed, so it is the subset
 * `lethe train --limit N --seed 0` trains on: libs/data's limitTrainingSet with seed 0. A
 * coordinator that wants another subset sends limit 0 and only indices of its own subset.
 */
export function limitDataset(dataset: Dataset, limit: number): Dataset {
  return limitTrainingSet(dataset, limit || undefined, 0);
}

/**
 * SHA-256 over what a dataset holds: the NHWC pixel bytes, then the labels and then the original
 * indices, each as little-endian int32.
 */
export function datasetSha256(dataset: Dataset): string {
  return createHash('sha256')
    .update(dataset.images)
    .update(bytesOf(dataset.labels))
    .update(bytesOf(dataset.indices))
    .digest('hex');
}

function storeError(error: unknown, what: string): Error {
  const code = (error as { code?: unknown }).code;
  if (code === 'ERR_STORE_NOT_FOUND') {
    return new HostError('NOT_FOUND', `${what}: ${messageOf(error)}`);
  }
  if (code === 'ERR_STORE_INVALID_KEY') {
    return new HostError('INVALID_ARGUMENT', `${what}: ${messageOf(error)}`);
  }
  if (code === 'ERR_STORE_INTEGRITY') {
    return new HostError('DATA_LOSS', `${what}: ${messageOf(error)}`);
  }
  return error instanceof Error ? error : new Error(String(error));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
