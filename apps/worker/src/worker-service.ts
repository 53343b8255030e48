import { status } from '@grpc/grpc-js';
import type { ChannelStats, Split as DataSplit } from '@lethe/data';
import {
  type DatasetSpec,
  ExpertCopy,
  fromFloat32Tensor,
  type ModelSpec as ProtoModelSpec,
  Split,
  toFloat32Tensor,
  type WorkerServer,
} from '@lethe/proto';
import { invalidArgument, RpcError, type RpcLogger, unaryHandler, unimplemented } from '@lethe/rpc';
import { type DatasetSource, HostError, type ModelSpec } from './expert-host';
import type { WorkerHost } from './host-thread';

/** Counts the RPCs being served, for the heartbeat's WorkerLoad.inflight_calls. */
export class CallTracker {
  inflight = 0;

  async track<T>(task: () => Promise<T> | T): Promise<T> {
    this.inflight++;
    try {
      return await task();
    } finally {
      this.inflight--;
    }
  }
}

/** A worker's two copies of its experts (ExpertCopy in worker.proto); datasets are shared. */
export interface WorkerHosts {
  training: WorkerHost;
  serving: WorkerHost;
}

/** Whether a call's `copy` names the serving copy (else the training one). */
function isServing(copy: ExpertCopy): boolean {
  switch (copy) {
    case ExpertCopy.EXPERT_COPY_UNSPECIFIED:
      return false;
    case ExpertCopy.EXPERT_COPY_SERVING:
      return true;
    default:
      throw invalidArgument(`copy: unknown value ${String(copy)}`);
  }
}

/** What the service records when a WorkerMetrics is given. */
export interface WorkerServiceMetrics {
  forwardSeconds: { observe(seconds: number): void };
  backwardSeconds: { observe(seconds: number): void };
}

/** The expert (or experts) a request is about, for log lines; empty when it names none. */
function expertFields(request: unknown): { expertId?: number; expertIds?: number[] } {
  const r = request as { expertId?: unknown; expertIds?: unknown; experts?: unknown };
  if (typeof r.expertId === 'number') return { expertId: r.expertId };
  if (Array.isArray(r.expertIds)) return { expertIds: r.expertIds as number[] };
  if (Array.isArray(r.experts)) {
    return { expertIds: (r.experts as { expertId: number }[]).map((e) => e.expertId) };
  }
  return {};
}

/**
 * The Worker service of proto/lethe/v1/worker.proto over an ExpertHost: decodes requests,
 * checks what only the wire can get wrong (missing messages, tensor byte lengths, enum values),
 * and maps HostError codes to gRPC status codes. A call that fails is logged with its method and
 * expert id: a status the caller acts on (NOT_FOUND, …) as a warning, anything unexpected as an
 * error (INTERNAL).
 */
export function createWorkerService(
  hosts: WorkerHosts,
  tracker: CallTracker,
  log?: RpcLogger,
  metrics?: WorkerServiceMetrics,
): WorkerServer {
  const handle = <Req, Res>(
    method: string,
    handler: (request: Req) => Promise<Res> | Res,
  ): ReturnType<typeof unaryHandler<Req, Res>> =>
    unaryHandler<Req, Res>((request) =>
      tracker.track(async () => {
        try {
          return await handler(request);
        } catch (error) {
          const mapped =
            error instanceof HostError ? new RpcError(status[error.code], error.message) : error;
          const fields = { method, ...expertFields(request) };
          if (mapped instanceof RpcError) {
            log?.warn?.(
              { ...fields, code: status[mapped.code], reason: mapped.message },
              'rpc failed',
            );
          } else {
            // unaryHandler answers INTERNAL with the message; the log line is written here,
            // where the request (its expert) is known.
            log?.error({ ...fields, code: 'INTERNAL', err: mapped }, 'rpc handler failed');
          }
          throw mapped;
        }
      }),
    );

  return {
    assignExperts: handle('AssignExperts', async (request) => {
      if (!request.model) throw invalidArgument('model: required');
      const serving = isServing(request.copy);
      if (serving && request.experts.some((e) => e.optimizerState)) {
        throw invalidArgument('experts: the serving copy holds no optimizer state');
      }
      const experts = await (serving ? hosts.serving : hosts.training).assignExperts(
        toModelSpec(request.model),
        request.experts.map((e) => ({
          expertId: e.expertId,
          ...(e.weights ? { weights: e.weights } : {}),
          ...(e.optimizerState ? { optimizerState: e.optimizerState } : {}),
          lastStepId: e.lastStepId,
        })),
        request.replaceAll,
      );
      return { experts };
    }),

    loadDataset: handle('LoadDataset', async (request) => {
      const info = await hosts.training.loadDataset(request.key, toDatasetSource(request.dataset));
      return info;
    }),

    forward: handle('Forward', async (request) => {
      const serving = isServing(request.copy);
      if (serving && request.training) {
        throw invalidArgument('training: the serving copy runs inference forwards only');
      }
      const started = performance.now();
      const input = {
        stepId: request.stepId,
        expertId: request.expertId,
        datasetKey: request.datasetKey,
        indices: request.indices,
        training: request.training,
        ...(request.augmentation ? { augmentation: request.augmentation } : {}),
        ...(request.frozenBatchNorm ? { frozenBatchNorm: true } : {}),
      };
      const { values, shape } = await (serving ? hosts.serving : hosts.training).forward(input);
      const computeSeconds = (performance.now() - started) / 1000;
      metrics?.forwardSeconds.observe(computeSeconds);
      return {
        stepId: request.stepId,
        expertId: request.expertId,
        logits: toFloat32Tensor(values, shape),
        computeSeconds,
      };
    }),

    backward: handle('Backward', async (request) => {
      if (!request.logitGradients) throw invalidArgument('logit_gradients: required');
      let gradient: { values: Float32Array; shape: number[] };
      try {
        gradient = fromFloat32Tensor(request.logitGradients);
      } catch (error) {
        throw invalidArgument(`logit_gradients: ${(error as Error).message}`);
      }
      const started = performance.now();
      const result = await hosts.training.backward({
        stepId: request.stepId,
        expertId: request.expertId,
        gradient: gradient.values,
        shape: gradient.shape,
        learningRate: request.learningRate,
        weightDecay: request.weightDecay,
      });
      const computeSeconds = (performance.now() - started) / 1000;
      metrics?.backwardSeconds.observe(computeSeconds);
      return {
        stepId: request.stepId,
        expertId: request.expertId,
        ...result,
        computeSeconds,
      };
    }),

    predict: handle('Predict', async (request) => {
      const host = isServing(request.copy) ? hosts.serving : hosts.training;
      const { values, shape } = await host.predict(request.expertId, request.images);
      return { expertId: request.expertId, logits: toFloat32Tensor(values, shape) };
    }),

    checkpoint: handle('Checkpoint', async (request) => {
      const result = await hosts.training.checkpoint(request.expertId);
      return { expertId: request.expertId, ...result };
    }),

    release: handle('Release', (request) => {
      const input = {
        expertIds: request.expertIds,
        datasetKeys: request.datasetKeys,
        all: request.all,
      };
      return isServing(request.copy) ? hosts.serving.release(input) : hosts.training.release(input);
    }),
  };
}

function toModelSpec(model: ProtoModelSpec): ModelSpec {
  if (model.inputShape.length !== 3) {
    throw invalidArgument(
      `model.input_shape: expected [height, width, channels], got [${model.inputShape.join(', ')}]`,
    );
  }
  if (!model.normalisation) throw invalidArgument('model.normalisation: required');
  const { mean, std } = model.normalisation;
  if (mean.length !== 3 || std.length !== 3) {
    throw invalidArgument('model.normalisation: exactly 3 means and 3 standard deviations');
  }
  const normalisation: ChannelStats = {
    mean: [mean[0]!, mean[1]!, mean[2]!],
    std: [std[0]!, std[1]!, std[2]!],
  };
  return {
    preset: model.preset,
    numClasses: model.numClasses,
    inputShape: [model.inputShape[0]!, model.inputShape[1]!, model.inputShape[2]!],
    normalisation,
    experts: model.experts,
    seed: model.seed,
  };
}

function toDatasetSource(spec: DatasetSpec | undefined): DatasetSource {
  if (!spec?.source) throw invalidArgument('dataset: required (uri or object)');
  if (spec.source.$case === 'object') {
    throw unimplemented('dataset.object: dataset snapshots in the store are not supported yet');
  }
  return { uri: spec.source.value, split: toSplit(spec.split), limit: spec.limit };
}

function toSplit(split: Split): DataSplit {
  switch (split) {
    case Split.SPLIT_UNSPECIFIED:
    case Split.SPLIT_TRAIN:
      return 'train';
    case Split.SPLIT_TEST:
      return 'test';
    default:
      throw invalidArgument(`dataset.split: unknown value ${String(split)}`);
  }
}
