import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ArrayBatch,
  decodeOptimizerState,
  deserializeParameters,
  encodeOptimizerState,
  MoEModel,
  type ModulePart,
  serializeParameters,
  trainModel,
  type TrainingRun,
} from '../src';
import { tinyModel, useWasm } from './helpers';

beforeAll(useWasm);

const EPOCHS = 3;
const STEPS = 3;

/** Epoch `epoch`'s batches: different samples every epoch, as a seeded shuffle would give. */
function batches(epoch: number): ArrayBatch[] {
  return Array.from({ length: STEPS }, (_, k) => {
    const n = 12;
    const s = epoch * STEPS + k;
    const x = new Float32Array(n * 192);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = (i + s) % 3;
      for (let j = 0; j < 192; j++)
        x[i * 192 + j] = (j % 3 === y[i] ? 1 : 0) + Math.sin(i * 5 + j + s) * 0.3;
    }
    return { x, y, size: n };
  });
}

const run = (overrides: Partial<TrainingRun> = {}): TrainingRun => ({
  epochs: EPOCHS,
  stepsPerEpoch: STEPS,
  learningRate: 0.01,
  schedule: 'one-cycle',
  weightDecay: 0.05,
  batches,
  ...overrides,
});

const weights = (model: MoEModel): number[] =>
  MoEModel.parts(model.config.experts).flatMap((p) =>
    model
      .part(p)
      .params.all()
      .flatMap((v) => Array.from(v.variable.dataSync())),
  );

/** What a checkpoint stores: every part's bytes and the training state, through bytes. */
interface Checkpoint {
  parts: Map<ModulePart, Uint8Array>;
  optimizer: Uint8Array;
  weightDecay: number;
  noiseStep: number;
}

function checkpointOf(model: MoEModel): Checkpoint {
  const parts = MoEModel.parts(model.config.experts);
  const state = model.exportTrainingState(parts);
  return {
    parts: new Map(parts.map((p) => [p, serializeParameters(model.part(p).params, { part: p })])),
    optimizer: encodeOptimizerState(state.optimizer),
    weightDecay: state.weightDecay,
    noiseStep: state.noiseStep,
  };
}

function restore(checkpoint: Checkpoint): MoEModel {
  const model = tinyModel();
  for (const [p, bytes] of checkpoint.parts) deserializeParameters(model.part(p).params, bytes);
  model.importTrainingState([...checkpoint.parts.keys()], {
    optimizer: decodeOptimizerState(checkpoint.optimizer),
    weightDecay: checkpoint.weightDecay,
    noiseStep: checkpoint.noiseStep,
  });
  return model;
}

/** A run of `epochs` stopped once its first epoch is done, and the checkpoint taken then. */
async function interruptedAfterFirstEpoch(
  make: () => MoEModel,
  epochs: number,
): Promise<Checkpoint> {
  const model = make();
  const abort = new AbortController();
  let checkpoint: Checkpoint | undefined;
  await expect(
    trainModel(
      model,
      run({
        epochs,
        signal: abort.signal,
        onEpoch: (summary) => {
          if (summary.epoch === 0) {
            checkpoint = checkpointOf(model);
            abort.abort();
          }
        },
      }),
    ),
  ).rejects.toThrow('training cancelled');
  model.dispose();
  return checkpoint!;
}

describe('resuming training from an epoch checkpoint', () => {
  it('gives the same weights, schedule and summaries as an uninterrupted run', async () => {
    const whole = tinyModel();
    const rates: number[] = [];
    const history = await trainModel(whole, run({ onStep: (p) => rates.push(p.learningRate) }));
    const expected = weights(whole);
    whole.dispose();

    const before = tf.memory().numTensors;
    const checkpoint = await interruptedAfterFirstEpoch(() => tinyModel(), EPOCHS);
    const resumed = restore(checkpoint);
    const resumedRates: number[] = [];
    const rest = await trainModel(
      resumed,
      run({ startEpoch: 1, onStep: (p) => resumedRates.push(p.learningRate) }),
    );
    expect(rest.map((h) => h.epoch)).toEqual([1, 2]);
    expect(rest.map((h) => h.loss)).toEqual(history.slice(1).map((h) => h.loss));
    expect(resumedRates).toEqual(rates.slice(STEPS));
    // wasm runs one thread in a fixed order: bit for bit, no tolerance.
    expect(weights(resumed)).toEqual(expected);
    resumed.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('resumes the in-process router noise: without the noise step the run differs', async () => {
    const reference = tinyModel({ routerNoise: 2 });
    await trainModel(reference, run({ epochs: 2 }));
    const expected = weights(reference);
    reference.dispose();

    const checkpoint = await interruptedAfterFirstEpoch(() => tinyModel({ routerNoise: 2 }), 2);
    expect(checkpoint.noiseStep).toBe(STEPS);
    const again = async (noiseStep: number): Promise<number[]> => {
      const model = tinyModel({ routerNoise: 2 });
      for (const [p, bytes] of checkpoint.parts) deserializeParameters(model.part(p).params, bytes);
      model.importTrainingState([...checkpoint.parts.keys()], {
        optimizer: decodeOptimizerState(checkpoint.optimizer),
        weightDecay: checkpoint.weightDecay,
        noiseStep,
      });
      await trainModel(model, run({ epochs: 2, startEpoch: 1 }));
      const result = weights(model);
      model.dispose();
      return result;
    };
    expect(await again(checkpoint.noiseStep)).toEqual(expected);
    expect(await again(0)).not.toEqual(expected);
  });

  it('exports and imports state without leaking tensors, and refuses state of other parts', async () => {
    const model = tinyModel();
    await trainModel(model, run({ epochs: 1 }));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      const state = model.exportTrainingState(['router']);
      model.importTrainingState(['router'], state);
    }
    expect(tf.memory().numTensors).toBe(before);
    const routerState = model.exportTrainingState(['router']);
    expect(routerState.optimizer.steps).toBe(STEPS);
    expect(() => model.importTrainingState(['router', 'expert/0'], routerState)).toThrow(
      /does not fit router, expert\/0/,
    );
    // A refused import leaves the state as it was.
    expect(model.exportTrainingState(['router'])).toEqual(routerState);
    expect(tf.memory().numTensors).toBe(before);
    // A model that never stepped exports zero moments at step 0.
    const fresh = tinyModel();
    const zero = fresh.exportTrainingState(['router']);
    expect(zero.optimizer.steps).toBe(0);
    expect(zero.optimizer.moments.every(({ m }) => m.every((v) => v === 0))).toBe(true);
    fresh.dispose();
    model.dispose();
  });

  it('refuses a start epoch outside the run', async () => {
    const model = tinyModel();
    await expect(trainModel(model, run({ startEpoch: 4 }))).rejects.toThrow(
      'startEpoch must be an integer in 0..3, got 4',
    );
    // Starting at the end trains nothing.
    expect(await trainModel(model, run({ startEpoch: 3 }))).toEqual([]);
    model.dispose();
  });
});
