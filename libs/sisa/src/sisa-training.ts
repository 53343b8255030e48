import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import {
  type ChannelStats,
  type Dataset,
  deriveSeed,
  epochPermutation,
  gatherBatch,
  positionOfIndex,
} from '@lethe/data';
import {
  deserializeParameters,
  ExpertTrainer,
  MoEModel,
  type MoEConfig,
  serializeParameters,
  trainModel,
} from '@lethe/model';
import {
  getVerified,
  NotFoundError,
  type ObjectRef,
  type ObjectStore,
  putContent,
} from '@lethe/store';
import {
  type CheckpointRecord,
  lineageHash,
  readCheckpoint,
  type ShardRecipe,
  writeCheckpoint,
} from './checkpoints';
import { prefix, type SisaLayout } from './layout';

export interface SisaRecipe {
  config: MoEConfig;
  normalise: ChannelStats;
  epochsPerSlice: number;
  routerEpochs: number;
  /**
   * Share of the training samples the router is trained on (a seeded subset, stable when
   * samples are removed). The router must be retrained on every forget, so this bounds that
   * cost; 1 = all samples.
   */
  routerFraction?: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
}

export interface ShardReport {
  shard: number;
  /** Slices trained in this run, increasing; the others were found in the store. */
  trained: number[];
  reused: number[];
  /** The checkpoint the first trained slice started from (`initial` for fresh weights). */
  startedFrom: string;
  checkpoints: CheckpointRecord[];
  seconds: number;
}

export interface SisaTrainingResult {
  shards: ShardReport[];
  /** The router's weights, trained with the experts frozen. */
  router: Uint8Array;
  routerSeconds: number;
}

export interface SisaProgress {
  phase: 'train-shard' | 'train-router';
  shard?: number;
  slice?: number;
  epoch: number;
  step: number;
  loss: number;
}

export function shardRecipe(recipe: SisaRecipe): ShardRecipe {
  const { config } = recipe;
  return {
    preset: config.preset,
    numClasses: config.numClasses,
    inputShape: config.inputShape,
    seed: config.seed,
    epochsPerSlice: recipe.epochsPerSlice,
    batchSize: recipe.batchSize,
    learningRate: recipe.learningRate,
    weightDecay: recipe.weightDecay,
  };
}

/**
 * Where shard models train: in this process (the default), or on workers that host them. A
 * trainer starts a shard from a checkpoint (or fresh weights), takes steps on batches given as
 * dataset positions, and stores a snapshot of weights and optimizer state as store objects.
 */
export interface ShardTrainer {
  /** Tells lineages apart: checkpoints from different trainers are never mixed up. */
  readonly kind: string;
  begin(shard: number, from: CheckpointRecord | undefined): Promise<void>;
  /** One optimizer step on cross-entropy; returns the mean loss. */
  step(
    shard: number,
    positions: Int32Array,
    context: { slice: number; epoch: number; step: number },
  ): Promise<number>;
  snapshot(shard: number): Promise<{ weights: ObjectRef; optimizer: ObjectRef }>;
  end(shard: number): Promise<void>;
}

/** Shard models in this process, with ExpertTrainer. */
export function localShardTrainer(
  store: ObjectStore,
  train: Dataset,
  recipe: SisaRecipe,
): ShardTrainer {
  const trainers = new Map<number, ExpertTrainer>();
  const held = (shard: number): ExpertTrainer => {
    const trainer = trainers.get(shard);
    if (!trainer) throw new Error(`shard ${shard} was not begun`);
    return trainer;
  };
  return {
    kind: 'local',
    async begin(shard, from) {
      const trainer = new ExpertTrainer(recipe.config, shard);
      trainers.set(shard, trainer);
      if (from) {
        trainer.loadWeights(await getVerified(store, from.weights));
        trainer.loadOptimizer(await getVerified(store, from.optimizer));
      }
    },
    async step(shard, positions) {
      const batch = gatherBatch(train, positions, { normalise: recipe.normalise });
      const [h, w, c] = recipe.config.inputShape;
      const x = tf.tensor4d(batch.x.subarray(0, batch.size * h * w * c), [batch.size, h, w, c]);
      const y = tf.tensor1d(batch.y.subarray(0, batch.size), 'int32');
      try {
        return held(shard).trainStep(x, y, {
          learningRate: recipe.learningRate,
          weightDecay: recipe.weightDecay,
        });
      } finally {
        tf.dispose([x, y]);
      }
    },
    async snapshot(shard) {
      const trainer = held(shard);
      return {
        weights: await putContent(store, trainer.serializeWeights(), { kind: 'expert' }),
        optimizer: await putContent(store, trainer.serializeOptimizer(), { kind: 'optimizer' }),
      };
    },
    async end(shard) {
      trainers.get(shard)?.dispose();
      trainers.delete(shard);
    },
  };
}

/**
 * Trains one shard model slice by slice, as SISA does: after slice r it has trained on slices
 * 0..r, and a checkpoint (weights, optimizer state, the sample ids) is stored under the hash of
 * that lineage. A lineage already in the store is loaded instead of trained, so a replay after
 * forgetting recomputes exactly the slices from the first one that held a forgotten sample.
 */
export async function trainShard(
  store: ObjectStore,
  train: Dataset,
  layout: SisaLayout,
  recipe: SisaRecipe,
  shard: number,
  onProgress?: (p: SisaProgress) => void,
  trainer: ShardTrainer = localShardTrainer(store, train, recipe),
): Promise<ShardReport> {
  const started = performance.now();
  const shardSpec = {
    ...shardRecipe(recipe),
    ...(trainer.kind === 'local' ? {} : { trainer: trainer.kind }),
  };
  const report: ShardReport = {
    shard,
    trained: [],
    reused: [],
    startedFrom: 'initial',
    checkpoints: [],
    seconds: 0,
  };
  // Find the longest stored prefix first: only slices after it need training.
  const lineages = Array.from({ length: layout.slices }, (_, r) =>
    lineageHash(shardSpec, shard, r, prefix(layout, shard, r)),
  );
  let resume = -1;
  for (let r = layout.slices - 1; r >= 0; r--) {
    if (await readCheckpoint(store, lineages[r]!)) {
      resume = r;
      break;
    }
  }
  for (let r = 0; r <= resume; r++) {
    report.reused.push(r);
    report.checkpoints.push((await readCheckpoint(store, lineages[r]!))!);
  }
  if (resume === layout.slices - 1) {
    report.startedFrom = report.checkpoints[resume]!.weights.sha256;
    report.seconds = (performance.now() - started) / 1000;
    return report;
  }
  const from = resume >= 0 ? report.checkpoints[resume]! : undefined;
  if (from) report.startedFrom = from.weights.sha256;
  await trainer.begin(shard, from);
  try {
    for (let r = resume + 1; r < layout.slices; r++) {
      const indices = prefix(layout, shard, r);
      const positions = Int32Array.from(indices, (i) => positionOfIndex(train, i));
      for (let epoch = 0; epoch < recipe.epochsPerSlice; epoch++) {
        const order = epochPermutation(
          positions,
          deriveSeed(recipe.config.seed, 'sisa', shard, r),
          epoch,
        );
        for (let b = 0, step = 1; b < order.length; b += recipe.batchSize, step++) {
          const loss = await trainer.step(shard, order.subarray(b, b + recipe.batchSize), {
            slice: r,
            epoch,
            step,
          });
          onProgress?.({ phase: 'train-shard', shard, slice: r, epoch, step, loss });
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
      report.trained.push(r);
      const snapshot = await trainer.snapshot(shard);
      report.checkpoints.push(
        await writeCheckpoint(
          store,
          { lineage: lineages[r]!, shard, slice: r, samples: indices.length },
          { indices, ...snapshot },
        ),
      );
    }
  } finally {
    await trainer.end(shard);
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/**
 * Trains every shard model (reusing stored lineages), then the router on all samples of the
 * layout with the shard models frozen — their logits computed once per sample and cached.
 */
export async function trainSisa(
  store: ObjectStore,
  train: Dataset,
  layout: SisaLayout,
  recipe: SisaRecipe,
  onProgress?: (p: SisaProgress) => void,
  trainer?: ShardTrainer,
): Promise<SisaTrainingResult> {
  if (layout.shards !== recipe.config.experts) {
    throw new Error(
      `a sisa model has one expert per shard: ${layout.shards} shards, ${recipe.config.experts} experts`,
    );
  }
  // Shards are independent: on workers they train at the same time; here, one after another.
  const shardIds = Array.from({ length: layout.shards }, (_, shard) => shard);
  const shards: ShardReport[] = trainer
    ? await Promise.all(
        shardIds.map((shard) =>
          trainShard(store, train, layout, recipe, shard, onProgress, trainer),
        ),
      )
    : [];
  if (!trainer) {
    for (const shard of shardIds)
      shards.push(await trainShard(store, train, layout, recipe, shard, onProgress));
  }
  const started = performance.now();
  const model = new MoEModel(recipe.config);
  try {
    for (const report of shards) {
      const last = report.checkpoints.at(-1)!;
      deserializeParameters(
        model.part(`expert/${report.shard}`).params,
        await getVerified(store, last.weights),
      );
    }
    const fraction = recipe.routerFraction ?? 1;
    const universe = routerUniverse(train, recipe.config.seed, fraction);
    const row = new Int32Array(train.size).fill(-1);
    universe.forEach((p, r) => (row[p] = r));
    const inLayout = new Set(layout.slots.flat(2));
    const positions = universe.filter((p) => inLayout.has(train.indices[p]!));
    // Each shard model's logits on the router's samples, stored under its checkpoint's lineage:
    // a replay recomputes only the replayed shards' tables, and the router trains on tables.
    const tables: Float32Array[] = [];
    for (const report of shards) {
      tables.push(
        await expertLogitsTable(store, train, model, recipe, report.checkpoints.at(-1)!, universe),
      );
    }
    const classes = recipe.config.numClasses;
    const provider =
      (batchPositions: Int32Array) =>
      (expert: number, routed: Int32Array): tf.Tensor2D => {
        const out = new Float32Array(routed.length * classes);
        routed.forEach((b, i) => {
          const r = row[batchPositions[b]!]!;
          out.set(tables[expert]!.subarray(r * classes, (r + 1) * classes), i * classes);
        });
        return tf.tensor2d(out, [routed.length, classes]);
      };
    await trainModel(model, {
      epochs: recipe.routerEpochs,
      stepsPerEpoch: Math.ceil(positions.length / recipe.batchSize),
      learningRate: recipe.learningRate,
      schedule: 'constant',
      weightDecay: recipe.weightDecay,
      trainable: new Set(['router']),
      batches: (epoch) => routerBatches(train, positions, recipe, epoch),
      perBatch: (batch) => ({ expertLogits: provider(batch.positions!) }),
      onStep: (p) =>
        onProgress?.({ phase: 'train-router', epoch: p.epoch, step: p.step, loss: p.loss }),
    });
    return {
      shards,
      router: serializeRouter(model),
      routerSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    model.dispose();
  }
}

function* routerBatches(
  train: Dataset,
  positions: Int32Array,
  recipe: SisaRecipe,
  epoch: number,
): Generator<ReturnType<typeof gatherBatch>> {
  const order = epochPermutation(positions, deriveSeed(recipe.config.seed, 'sisa-router'), epoch);
  for (let b = 0; b < order.length; b += recipe.batchSize) {
    yield gatherBatch(train, order.subarray(b, b + recipe.batchSize), {
      normalise: recipe.normalise,
    });
  }
}

/** The bytes storeParts writes for the router, so the manifest's hash names the same object. */
function serializeRouter(model: MoEModel): Uint8Array {
  return serializeParameters(model.router.params, { part: 'router' });
}

/**
 * The training samples (dataset positions, increasing) the router may train on: those whose
 * seeded hash falls below `fraction`. Removing other samples never changes it.
 */
export function routerUniverse(train: Dataset, seed: number, fraction: number): Int32Array {
  if (!(fraction > 0 && fraction <= 1))
    throw new Error(`router fraction must be in (0, 1], got ${fraction}`);
  const all = Int32Array.from({ length: train.size }, (_, p) => p);
  if (fraction === 1) return all;
  return all.filter((p) => {
    const id = `${seed}\nrouter\n${train.name}:${train.split}:${train.indices[p]}`;
    return createHash('sha256').update(id).digest().readUInt32BE(0) / 2 ** 32 < fraction;
  });
}

/**
 * A shard model's inference logits on the router's samples, [n, C] in `universe` order, computed
 * in fixed batches (so the same checkpoint always gives the same bytes) and stored under
 * `sisa/logits/<lineage>/<n>.bin`.
 */
async function expertLogitsTable(
  store: ObjectStore,
  train: Dataset,
  model: MoEModel,
  recipe: SisaRecipe,
  checkpoint: CheckpointRecord,
  universe: Int32Array,
): Promise<Float32Array> {
  const key = `sisa/logits/${checkpoint.lineage}/${universe.length}.bin`;
  const classes = recipe.config.numClasses;
  try {
    const bytes = await store.get(key);
    if (bytes.byteLength === universe.length * classes * 4) {
      return new Float32Array(
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
      );
    }
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
  const table = new Float32Array(universe.length * classes);
  const [h, w, c] = recipe.config.inputShape;
  for (let b = 0; b < universe.length; b += 256) {
    const batch = gatherBatch(train, universe.subarray(b, b + 256), {
      normalise: recipe.normalise,
    });
    const logits = tf.tidy(() =>
      model
        .part(`expert/${checkpoint.shard}`)
        .apply(
          tf.tensor4d(batch.x.subarray(0, batch.size * h * w * c), [batch.size, h, w, c]),
          false,
        ),
    );
    table.set(logits.dataSync(), b * classes);
    logits.dispose();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await store.put(key, new Uint8Array(table.buffer));
  return table;
}
