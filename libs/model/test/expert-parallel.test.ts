import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeOptimizerState,
  encodeOptimizerState,
  ExpertTrainer,
  type MoEModel,
  serializeParameters,
} from '../src';
import { tinyModel, toyBatch, useWasm, weightsOf } from './helpers';

beforeAll(useWasm);

/** One expert-parallel step as the coordinator and workers split it. */
function parallelStep(
  router: MoEModel,
  trainers: ExpertTrainer[],
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  noiseSeed: number,
  frozenBatchNorm = false,
): number {
  const assignments = router.route(x, { training: true, noiseSeed, frozenBatchNorm });
  const inputs = new Map<number, tf.Tensor4D>();
  const logits = new Map<number, tf.Tensor2D>();
  assignments.forEach((positions, e) => {
    if (positions.length === 0) return;
    const xe = tf.tidy(() => tf.gather(x, tf.tensor1d(positions, 'int32')));
    inputs.set(e, xe);
    logits.set(e, trainers[e]!.forward(xe, true, frozenBatchNorm));
  });
  const result = router.trainStep(x, y, {
    learningRate: 0.01,
    noiseSeed,
    externalExperts: logits,
    frozenBatchNorm,
  });
  for (const [e, xe] of inputs) {
    const rows = result.expertLogitGradients!.get(e)!;
    const grad = tf.tensor2d(rows, [xe.shape[0], 3]);
    trainers[e]!.backward(xe, grad, { learningRate: 0.01, frozenBatchNorm });
    tf.dispose([grad, xe, logits.get(e)!]);
  }
  return result.loss;
}

function closeTo(actual: Float32Array[], expected: Float32Array[], tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  actual.forEach((a, i) => {
    const b = expected[i]!;
    for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!));
  });
  expect(worst).toBeLessThan(tolerance);
}

/** The split model (router + expert trainers) holds the local model's weights, to 1e-5. */
function expectSameWeights(router: MoEModel, trainers: ExpertTrainer[], local: MoEModel): void {
  closeTo(weightsOf(router, 'router'), weightsOf(local, 'router'), 1e-5);
  trainers.forEach((t, e) => {
    closeTo(
      t.net.params.all().map((p) => Float32Array.from(p.variable.dataSync() as Float32Array)),
      weightsOf(local, `expert/${e}`),
      1e-5,
    );
  });
}

describe('expert parallelism', () => {
  let x: tf.Tensor4D, y: tf.Tensor1D;
  beforeAll(() => ({ x, y } = toyBatch(32)));
  afterAll(() => tf.dispose([x, y]));

  it('builds each expert exactly as the single-process model does', () => {
    const model = tinyModel();
    const trainer = new ExpertTrainer(model.config, 2);
    expect(trainer.serializeWeights()).toEqual(
      serializeParameters(model.part('expert/2').params, { part: 'expert/2' }),
    );
    trainer.dispose();
    model.dispose();
  });

  it('routes, gathers logits and back-propagates to the same weights as one local step', () => {
    const local = tinyModel();
    const router = tinyModel();
    const trainers = [0, 1, 2, 3].map((e) => new ExpertTrainer(router.config, e));
    const losses: [number, number][] = [];
    for (let step = 1; step <= 5; step++) {
      const expected = local.trainStep(x, y, { learningRate: 0.01, noiseSeed: step });
      losses.push([parallelStep(router, trainers, x, y, step), expected.loss]);
    }
    for (const [actual, expected] of losses) expect(actual).toBeCloseTo(expected, 5);
    expectSameWeights(router, trainers, local);
    local.dispose();
    router.dispose();
    for (const t of trainers) t.dispose();
  });

  it('with frozen batch norm, trains to the same weights split or not and keeps the statistics', () => {
    const local = tinyModel();
    const router = tinyModel();
    const trainers = [0, 1, 2, 3].map((e) => new ExpertTrainer(router.config, e));
    const moving = (values: readonly { name: string; variable: tf.Variable }[]): Float32Array[] =>
      values
        .filter((p) => p.name.includes('moving'))
        .map((p) => Float32Array.from(p.variable.dataSync() as Float32Array));
    const statistics = moving(local.part('expert/1').params.all());
    for (let step = 1; step <= 3; step++) {
      const expected = local.trainStep(x, y, {
        learningRate: 0.01,
        noiseSeed: step,
        frozenBatchNorm: true,
      });
      expect(parallelStep(router, trainers, x, y, step, true)).toBeCloseTo(expected.loss, 5);
    }
    expect(moving(local.part('expert/1').params.all())).toEqual(statistics);
    expect(moving(trainers[1]!.net.params.all())).toEqual(statistics);
    expectSameWeights(router, trainers, local);
    // Without it, the same steps move the statistics.
    local.trainStep(x, y, { learningRate: 0.01, noiseSeed: 9 });
    expect(moving(local.part('expert/1').params.all())).not.toEqual(statistics);
    local.dispose();
    router.dispose();
    for (const t of trainers) t.dispose();
  });

  it('leaks no tensors across expert-parallel steps', () => {
    const router = tinyModel();
    const trainers = [0, 1, 2, 3].map((e) => new ExpertTrainer(router.config, e));
    let atStep3 = 0;
    for (let step = 1; step <= 12; step++) {
      parallelStep(router, trainers, x, y, step);
      if (step === 3) atStep3 = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(atStep3);
    router.dispose();
    for (const t of trainers) t.dispose();
  });

  it('resumes from a checkpoint of weights and optimizer state exactly', () => {
    const config = tinyModel().config;
    const straight = new ExpertTrainer(config, 1);
    const xe = tf.tidy(() => tf.slice(x, 0, 8));
    const grad = tf.tidy(() => tf.mul(tf.ones([8, 3]), 0.1) as tf.Tensor2D);
    for (let i = 0; i < 3; i++)
      straight.backward(xe, grad, { learningRate: 0.01, weightDecay: 0.1 });
    const restored = new ExpertTrainer(config, 1);
    restored.loadWeights(straight.serializeWeights());
    restored.loadOptimizer(straight.serializeOptimizer());
    expect(restored.optimizerSteps).toBe(3);
    straight.backward(xe, grad, { learningRate: 0.01, weightDecay: 0.1 });
    restored.backward(xe, grad, { learningRate: 0.01, weightDecay: 0.1 });
    expect(restored.serializeWeights()).toEqual(straight.serializeWeights());
    tf.dispose([xe, grad]);
    straight.dispose();
    restored.dispose();
  });

  it('rejects malformed optimizer state', () => {
    const bytes = encodeOptimizerState({
      steps: 2,
      moments: [{ m: Float32Array.of(1, 2), v: Float32Array.of(3, 4) }],
    });
    expect(decodeOptimizerState(bytes).moments[0]!.v).toEqual(Float32Array.of(3, 4));
    expect(() => decodeOptimizerState(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated/);
    expect(() => decodeOptimizerState(new Uint8Array(20))).toThrow(/bad magic/);
  });
});
