import * as tf from '@tensorflow/tfjs-core';
import { getVerified, type ObjectStore } from '@lethe/store';
import {
  deserializeParameters,
  type MoEModel,
  type StepContext,
  type StepResult,
} from '@lethe/model';
import { type Augmentation, encodeFloat32, fromFloat32Tensor } from '@lethe/proto';
import type { RemoteExperts } from '@lethe/unlearning';
import type { StepTiming } from '../contract/job-context';
import type { ExpertSession } from '../workers/expert-session';

export interface ExpertParallelOptions {
  /** Key of the training data on the workers. */
  datasetKey: string;
  /** Random crop and flip as the batches here were augmented; unset for none. */
  augmentation?: Omit<Augmentation, 'epoch'>;
  /** Step ids are stepBase + globalStep + 1: increasing per expert across jobs. */
  stepBase: number;
  /** Experts that run on workers; others are local or frozen (their logits come from the run). */
  remote: Iterable<number>;
  /**
   * Called after every step: its wall time, and the part spent in RPC — the time waiting on
   * workers minus the compute time they report (the slowest worker of each phase), so transport,
   * serialisation and queueing — and the batch's size.
   */
  onTiming?: (timing: StepTiming) => void;
}

/**
 * Expert parallelism: the router (here) picks experts for the batch, each remote expert's worker
 * computes logits for the samples routed to it — from its own copy of the data, by index — the
 * router steps here on the combined loss, and each worker gets back the gradient of the loss
 * with respect to its logits to back-propagate and step. Calls to different workers run
 * concurrently; a step moves indices, logits and logit gradients, never images.
 */
export class ExpertParallelExecutor implements RemoteExperts {
  private remote: Set<number>;

  constructor(
    private readonly session: ExpertSession,
    private readonly store: ObjectStore,
    private readonly options: ExpertParallelOptions,
  ) {
    this.remote = new Set(options.remote);
  }

  /** The targeted method learns which experts to retrain only once it has planned. */
  setRemote(experts: Iterable<number>): void {
    this.remote = new Set(experts);
  }

  async step(model: MoEModel, context: StepContext): Promise<StepResult> {
    const started = performance.now();
    const { batch, x, y, options, epoch, globalStep } = context;
    if (!batch.indices) throw new Error('expert parallelism needs the batch’s sample indices');
    const indices = batch.indices;
    const stepId = this.options.stepBase + globalStep + 1;
    // Router noise from the model's seed and the step within the run, as MoEModel draws it in
    // one process: never from the step id, which holds the job's number, so the same request
    // gives the same model whichever job runs it.
    const noiseSeed = (model.config.seed * 7_919 + globalStep + 1) % 2_147_483_647;
    const frozenBatchNorm = options.frozenBatchNorm ?? false;
    const assignments = model.route(x, { training: true, noiseSeed, frozenBatchNorm });
    const classes = model.config.numClasses;
    const augmentation = this.options.augmentation
      ? { ...this.options.augmentation, epoch }
      : undefined;
    const routed = [...this.remote].filter((e) => assignments[e]!.length > 0);
    let rpcSeconds = 0;
    const forwardStarted = performance.now();
    const logits = await Promise.all(
      routed.map(async (e) => {
        const response = await this.session.call(
          e,
          (c) => c.forward,
          {
            stepId,
            expertId: e,
            datasetKey: this.options.datasetKey,
            indices: Array.from(assignments[e]!, (p) => indices[p]!),
            training: true,
            copy: this.session.copy,
            augmentation,
            frozenBatchNorm,
          },
          { label: 'Forward' },
        );
        return response!;
      }),
    );
    rpcSeconds += phaseOverhead(forwardStarted, logits);
    const external = new Map(
      routed.map((e, i) => [
        e,
        tf.tensor2d(fromFloat32Tensor(logits[i]!.logits!).values, [
          assignments[e]!.length,
          classes,
        ]),
      ]),
    );
    let result: StepResult;
    try {
      result = model.trainStep(x, y, { ...options, noiseSeed, externalExperts: external });
    } finally {
      tf.dispose([...external.values()]);
    }
    const backwardStarted = performance.now();
    const backwards = await Promise.all(
      routed.map((e) =>
        this.session.call(
          e,
          (c) => c.backward,
          {
            stepId,
            expertId: e,
            logitGradients: {
              data: encodeFloat32(result.expertLogitGradients!.get(e)!),
              shape: [assignments[e]!.length, classes],
            },
            learningRate: options.learningRate,
            weightDecay: options.weightDecay ?? 0,
          },
          // A Backward whose expert had to move lost its Forward: that expert skips the step.
          { label: 'Backward', replay: false },
        ),
      ),
    );
    rpcSeconds += phaseOverhead(backwardStarted, backwards);
    this.options.onTiming?.({
      stepSeconds: (performance.now() - started) / 1000,
      rpcSeconds,
      images: indices.length,
    });
    return result;
  }

  async prepare(_model: MoEModel, experts: readonly number[]): Promise<void> {
    await Promise.all(experts.map((e) => this.session.ensure(e)));
  }

  /** Checkpoints the experts on their workers and loads the new weights into `model`. */
  async collect(model: MoEModel, experts: readonly number[]): Promise<void> {
    for (const e of experts) {
      const checkpoint = await this.session.checkpoint(e);
      if (!checkpoint.weights) throw new Error(`worker returned no weights for expert ${e}`);
      deserializeParameters(
        model.part(`expert/${e}`).params,
        await getVerified(this.store, checkpoint.weights),
      );
    }
  }
}

/** A phase of concurrent calls: its wall time beyond the slowest worker's own compute. */
function phaseOverhead(
  started: number,
  responses: readonly ({ computeSeconds: number } | undefined)[],
): number {
  const wall = (performance.now() - started) / 1000;
  const compute = Math.max(0, ...responses.map((r) => r?.computeSeconds ?? 0));
  return Math.max(0, wall - compute);
}
