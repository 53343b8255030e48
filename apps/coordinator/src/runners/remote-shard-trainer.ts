import type { Dataset } from '@lethe/data';
import { encodeFloat32, fromFloat32Tensor } from '@lethe/proto';
import type { ShardTrainer, SisaRecipe } from '@lethe/sisa';
import type { ExpertSession } from '../workers/expert-session';

/**
 * Sisa shard models on the workers that host them: each step sends the batch's sample indices
 * (Forward), computes the cross-entropy gradient of the returned logits here, and sends it back
 * (Backward); a snapshot is the worker's Checkpoint. Replays and fresh runs send the same calls,
 * so they give the same weights. A worker lost mid-slice fails the job rather than resume from
 * the slice's start with some steps lost — exactness first; rerunning reuses every finished slice.
 */
export function remoteShardTrainer(
  session: ExpertSession,
  train: Dataset,
  recipe: SisaRecipe,
  stepBase: number,
): ShardTrainer & { fail(reason: string): void } {
  const nextStep = new Map<number, number>();
  let failure: string | undefined;
  const classes = recipe.config.numClasses;
  return {
    kind: 'workers',
    fail(reason) {
      failure ??= reason;
    },
    async begin(shard, from) {
      session.checkpoints.set(
        shard,
        from
          ? { weights: from.weights, optimizerState: from.optimizer, lastStepId: 0 }
          : { lastStepId: 0 },
      );
      session.reset(shard);
      await session.ensure(shard);
      nextStep.set(shard, stepBase + 1);
    },
    async step(shard, positions) {
      if (failure)
        throw new Error(
          `sisa training stopped: ${failure}; run it again (finished slices are reused)`,
        );
      const stepId = nextStep.get(shard)!;
      nextStep.set(shard, stepId + 1);
      const forward = await session.call(
        shard,
        (c) => c.forward,
        {
          stepId,
          expertId: shard,
          datasetKey: 'train',
          indices: Array.from(positions, (p) => train.indices[p]!),
          training: true,
          frozenBatchNorm: false,
          copy: session.copy,
          augmentation: undefined,
        },
        { label: 'Forward', replay: false },
      );
      if (!forward)
        throw new Error(`sisa training stopped: shard ${shard} lost its worker mid-slice`);
      const logits = fromFloat32Tensor(forward.logits!).values;
      const n = positions.length;
      // d(mean CE)/d(logits) = (softmax − one-hot) / n, row by row.
      const gradient = new Float32Array(n * classes);
      let loss = 0;
      for (let i = 0; i < n; i++) {
        const row = logits.subarray(i * classes, (i + 1) * classes);
        const max = Math.max(...row);
        let sum = 0;
        for (let c = 0; c < classes; c++) sum += Math.exp(row[c]! - max);
        const label = train.labels[positions[i]!]!;
        for (let c = 0; c < classes; c++) {
          const p = Math.exp(row[c]! - max) / sum;
          gradient[i * classes + c] = (p - (c === label ? 1 : 0)) / n;
          if (c === label) loss -= Math.log(Math.max(p, 1e-12)) / n;
        }
      }
      const backward = await session.call(
        shard,
        (c) => c.backward,
        {
          stepId,
          expertId: shard,
          logitGradients: { data: encodeFloat32(gradient), shape: [n, classes] },
          learningRate: recipe.learningRate,
          weightDecay: recipe.weightDecay,
        },
        { label: 'Backward', replay: false },
      );
      if (!backward)
        throw new Error(`sisa training stopped: shard ${shard} lost its worker mid-slice`);
      return loss;
    },
    async snapshot(shard) {
      const checkpoint = await session.checkpoint(shard);
      if (!checkpoint.weights || !checkpoint.optimizerState) {
        throw new Error(`worker returned no checkpoint for shard ${shard}`);
      }
      return { weights: checkpoint.weights, optimizer: checkpoint.optimizerState };
    },
    async end() {},
  };
}
