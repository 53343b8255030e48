import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batches, channelStats, formatSampleId, makeSyntheticDataset } from '@lethe/data';
import { initEngine } from '@lethe/engine';
import {
  buildRoster,
  erasedOf,
  expertsThatSaw,
  honourLedger,
  parseSubjectTable,
  readLedger,
  readRoster,
  readRoutingLineage,
  ROSTER_OBJECT,
  ROUTING_LINEAGE_OBJECT,
  RoutingLineageRecorder,
  storeRoster,
  storeRoutingLineage,
} from '@lethe/ledger';
import { loadModel, MoEModel, saveModel, trainModel } from '@lethe/model';
import { LocalDirStore, ManifestStore } from '@lethe/store';
import {
  DEFAULT_SAMPLE_FORGET_RECIPE,
  forgetJointSamples,
  modelOutputs,
  OutputMemo,
  previewSampleForget,
  runSampleForgetMethod,
  SAMPLE_FORGET_METHODS,
  type SampleForgetReceipt,
} from '../src';

const train = makeSyntheticDataset({ perClass: 60, split: 'train', seed: 5, classes: 4 });
const test = makeSyntheticDataset({ perClass: 20, split: 'test', seed: 5, classes: 4 });
const id = (p: number): string => formatSampleId(train.name, 'train', train.indices[p]!);
// Subject "ana" owns three training samples, "bo" two; the rest have none.
const subjectCsv = `sample,subject\n${[3, 70, 150].map((p) => `${id(p)},ana`).join('\n')}\n${[8, 9]
  .map((p) => `${id(p)},bo`)
  .join('\n')}\n`;
const subjects = parseSubjectTable(new TextEncoder().encode(subjectCsv), 'subjects.csv');
const dir = mkdtempSync(join(tmpdir(), 'lethe-sample-forget-'));
const store = new LocalDirStore(dir);
const normalise = channelStats(train);
const config = {
  preset: 'tiny',
  experts: 4,
  topK: 1,
  numClasses: 4,
  inputShape: [32, 32, 3] as [number, number, number],
  routerNoise: 1,
  balanceWeight: 0.1,
  seed: 2,
};
const recipe = {
  mode: 'joint',
  dataset: 'synthetic',
  trainSize: train.size,
  epochs: 2,
  batchSize: 32,
  learningRate: 0.01,
  schedule: 'one-cycle',
  weightDecay: 0,
  augment: false,
  seed: 1,
};

/** sha256 of every file in a store directory: what "nothing changed" means. */
function digest(root = dir): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(root, { recursive: true, encoding: 'utf8' })) {
    const path = join(root, name);
    if (statSync(path).isFile()) {
      out[name] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  }
  return out;
}

beforeAll(async () => {
  await initEngine({ engine: 'wasm', log: () => undefined });
  const model = new MoEModel(config);
  const lineage = new RoutingLineageRecorder(train.size, config.experts);
  await trainModel(model, {
    epochs: 6,
    stepsPerEpoch: Math.floor(train.size / 32),
    learningRate: 0.01,
    batches: (epoch) =>
      batches(train, { batchSize: 32, seed: 1, epoch, dropLast: true, normalise }),
    executor: {
      step: (m, step) => {
        const result = m.trainStep(step.x, step.y, step.options);
        lineage.record(step.epoch, step.batch.positions!, result.chosen);
        return Promise.resolve(result);
      },
    },
  });
  await saveModel(
    store,
    model,
    { classes: train.classes, normalisation: normalise },
    {
      objects: {
        [ROSTER_OBJECT]: await storeRoster(store, buildRoster(train, subjects)),
        [ROUTING_LINEAGE_OBJECT]: await storeRoutingLineage(store, lineage.toRecord()),
      },
      attributes: { training: recipe },
    },
  );
  model.dispose();
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('planning a sample forget on a joint model', () => {
  it('plans from the stored routing lineage, not from the router, and changes nothing', async () => {
    const before = digest();
    const preview = await previewSampleForget({ store, train, test }, { subjects: ['ana'] });
    expect(digest()).toEqual(before);
    const ids = [3, 70, 150].map(id).sort();
    expect(preview.request).toMatchObject({
      kind: 'samples',
      sampleIds: ids,
      subjects: ['ana'],
      method: DEFAULT_SAMPLE_FORGET_RECIPE.method,
      epochs: DEFAULT_SAMPLE_FORGET_RECIPE.epochs[DEFAULT_SAMPLE_FORGET_RECIPE.method],
      lambda: DEFAULT_SAMPLE_FORGET_RECIPE.lambda[DEFAULT_SAMPLE_FORGET_RECIPE.method],
    });
    // neggrad+ records its anchor; the other methods have none and refuse one.
    expect(preview.request.anchor).toBe(DEFAULT_SAMPLE_FORGET_RECIPE.anchor);
    const tuned = await previewSampleForget(
      { store, train, test },
      { subjects: ['ana'], method: 'finetune' },
    );
    expect(tuned.request).not.toHaveProperty('anchor');
    expect(
      (await previewSampleForget({ store, train, test }, { subjects: ['ana'], anchor: 0 })).request
        .anchor,
    ).toBe(0);
    for (const bad of [
      { method: 'finetune' as const, anchor: 1 },
      { anchor: Number.NaN },
      { anchor: -1 },
    ]) {
      await expect(
        previewSampleForget({ store, train, test }, { subjects: ['ana'], ...bad }),
      ).rejects.toMatchObject({ code: 'invalid-argument' });
    }
    expect(digest()).toEqual(before);
    // The oracle's record names the epochs it trains: the stored training recipe's.
    const oracle = await previewSampleForget(
      { store, train, test },
      { subjects: ['ana'], method: 'retrain' },
    );
    expect(oracle.request.epochs).toBe(recipe.epochs);
    const roster = (await readRoster(store))!;
    const lineage = (await readRoutingLineage(store))!;
    expect(preview.plan.experts).toEqual(expertsThatSaw(roster, lineage, ids));
    expect(preview.plan.lineageEpochs).toBe(6);
    expect(preview.estimate.expertsRetrained).toBe(preview.plan.experts.length);

    // Another store whose lineage says the samples only ever went to expert 2: the plan
    // follows the stored facts.
    const copy = mkdtempSync(join(tmpdir(), 'lethe-sample-plan-'));
    try {
      cpSync(dir, copy, { recursive: true });
      const other = new LocalDirStore(copy);
      const fake = new RoutingLineageRecorder(train.size, 4);
      for (let p = 0; p < train.size; p++) fake.record(0, [p], [[3, 70, 150].includes(p) ? 2 : 0]);
      const ref = await storeRoutingLineage(other, fake.toRecord());
      await new ManifestStore(other).update((d) => void (d.objects[ROUTING_LINEAGE_OBJECT] = ref));
      const planned = await previewSampleForget(
        { store: other, train, test },
        { subjects: ['ana'] },
      );
      expect(planned.plan.experts).toEqual([2]);
      expect(planned.plan.seenBy).toEqual([0, 0, 3, 0]);
      // Every retained sample went to expert 0, none to expert 2.
      expect(planned.plan.collateral).toBe(0);
      expect(planned.plan.retainedRouted).toBe(0);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

/** neggrad+ on a fresh copy of the stored model (2 epochs of a small recipe), then `read` it. */
async function neggradOnStored<T>(
  run: Pick<SampleRun, 'forgotten' | 'lambda'> & Partial<SampleRun>,
  read: (model: MoEModel) => T,
): Promise<T> {
  const { model } = await loadModel(store);
  try {
    await runSampleForgetMethod('neggrad+', {
      model,
      train,
      normalise,
      experts: [0, 1],
      epochs: 2,
      learningRate: 1e-3,
      batchSize: 32,
      retainFraction: 0.25,
      seed: 0,
      recipe: { ...recipe, epochs: 1, schedule: 'one-cycle' as const },
      ...run,
    });
    return read(model);
  } finally {
    model.dispose();
  }
}
type SampleRun = Parameters<typeof runSampleForgetMethod>[1];

describe('sample forgetting methods', () => {
  it('each runs on the planned experts and leaves the tensor count flat', async () => {
    const forgotten = Int32Array.from([3, 70, 150]);
    for (const method of SAMPLE_FORGET_METHODS) {
      const { model } = await loadModel(store);
      const run = {
        model,
        train,
        normalise,
        forgotten,
        experts: [0, 1],
        epochs: 1,
        learningRate: 1e-3,
        batchSize: 32,
        lambda: DEFAULT_SAMPLE_FORGET_RECIPE.lambda[method],
        // neggrad+ with its default anchor records a teacher: its tensors must go too.
        anchor: method === 'neggrad+' ? DEFAULT_SAMPLE_FORGET_RECIPE.anchor : 0,
        retainFraction: 0.25,
        seed: 0,
        recipe: { ...recipe, epochs: 1, schedule: 'one-cycle' as const },
      };
      try {
        // The first run creates the optimizer's state; a second must add nothing.
        const first = await runSampleForgetMethod(method, run);
        if (first.model !== model) first.model.dispose();
        const tensors = tf.memory().numTensors;
        const second = await runSampleForgetMethod(method, run);
        if (second.model !== model) second.model.dispose();
        expect(tf.memory().numTensors, method).toBe(tensors);
        if (method === 'retrain') {
          expect(second.parts).toHaveLength(5);
        } else {
          expect(second.parts.sort()).toEqual(['expert/0', 'expert/1', 'router']);
          expect(second.history[0]!.loss, method).toSatisfy(Number.isFinite);
          // Fine-tuning never visits the forgotten samples; the others visit them.
          const images = second.history[0]!.images;
          const retained = Math.round((train.size - 3) * 0.25);
          expect(images, method).toBe(
            method === 'finetune' || method === 'l1-sparse' ? retained : retained + 3,
          );
        }
      } finally {
        model.dispose();
      }
    }
  }, 60_000);

  it('neggrad+ ascends on a forgotten sample only while its loss is below the stop', async () => {
    const forgotten = Int32Array.from([3, 70, 150]);
    const weightsAfter = (lambda: number, ascentStop?: number): Promise<Float32Array> =>
      neggradOnStored(
        { forgotten, lambda, ...(ascentStop !== undefined ? { ascentStop } : {}) },
        (model) => {
          const parts = ['router', 'expert/0', 'expert/1'] as const;
          const vars = parts.flatMap((p) => model.part(p).params.trainable());
          return Float32Array.from(vars.flatMap((v) => Array.from(v.dataSync())));
        },
      );
    const noAscent = await weightsAfter(0);
    // Every forgotten sample's loss is above a stop this low from the first step: no ascent.
    expect(await weightsAfter(2, 1e-9)).toEqual(noAscent);
    // At chance's stop (the default) the same λ moves the weights.
    expect(await weightsAfter(2)).not.toEqual(noAscent);
  }, 60_000);

  it("neggrad+'s anchor holds the retained samples' outputs near the original's", async () => {
    const forgotten = Int32Array.from([3, 70, 150]);
    const { model: original } = await loadModel(store);
    const before = modelOutputs(original, train, normalise).probs;
    original.dispose();
    // Mean KL(original ‖ after) over the retained training samples.
    const driftWith = (anchor: number, originalOutputs?: OutputMemo): Promise<number> =>
      neggradOnStored(
        {
          forgotten,
          experts: [0, 1, 2, 3],
          learningRate: 3e-3,
          lambda: 3,
          anchor,
          retainFraction: 0.5,
          ...(originalOutputs ? { originalOutputs } : {}),
        },
        (model) => {
          const after = modelOutputs(model, train, normalise).probs;
          let kl = 0;
          let n = 0;
          for (let p = 0; p < train.size; p++) {
            if (forgotten.includes(p)) continue;
            for (let c = 0; c < 4; c++) {
              const q = before[p * 4 + c]!;
              kl += q * (Math.log(q + 1e-9) - Math.log(after[p * 4 + c]! + 1e-9));
            }
            n += 1;
          }
          return kl / n;
        },
      );
    const free = await driftWith(0);
    const anchored = await driftWith(10);
    expect(free).toBeGreaterThan(0);
    expect(anchored).toBeLessThan(free);

    // The targets come from the "before" memo where it holds them (here every other sample),
    // from a pass of the model for the rest: the same outputs, the same run.
    const { model: measured } = await loadModel(store);
    const memo = OutputMemo.for(train, 4, config.topK);
    const everyOther = Int32Array.from({ length: train.size / 2 }, (_, i) => 2 * i);
    modelOutputs(measured, train, normalise, { memo, positions: everyOther });
    measured.dispose();
    expect(await driftWith(10, memo)).toBeCloseTo(anchored, 6);
    // …and they are read: a memo of other outputs (uniform) anchors somewhere else.
    memo.probs.fill(0.25);
    expect(await driftWith(10, memo)).not.toBeCloseTo(anchored, 3);
  }, 60_000);
});

describe('forgetting a subject on a joint model', () => {
  let receipt: SampleForgetReceipt;
  const request = {
    requestId: 'forget-ana',
    subjects: ['ana'],
    epochs: 1,
    learningRate: 1e-3,
    batchSize: 32,
  };

  it('retrains the planned experts and the router, and publishes receipt, ledger and lineage', async () => {
    const before = (await new ManifestStore(store).read())!;
    const { model: original } = await loadModel(store);
    const testLoss = (() => {
      const { probs } = modelOutputs(original, test, normalise);
      let sum = 0;
      for (let p = 0; p < test.size; p++) sum -= Math.log(probs[p * 4 + test.labels[p]!]!);
      return sum / test.size;
    })();
    original.dispose();
    receipt = await forgetJointSamples({ store, train, test }, request);
    // The default method, neggrad+, stopped its ascent where an unseen sample's loss is (or
    // at chance's, ln 4, if that is lower).
    expect(receipt.request.method).toBe('neggrad+');
    expect(testLoss).toBeLessThan(Math.log(4));
    expect(receipt.ascentStop).toBeCloseTo(testLoss, 4);
    const after = (await new ManifestStore(store).read())!;
    expect(receipt.mode).toBe('approximate');
    expect(receipt.request.sampleIds).toEqual([3, 70, 150].map(id).sort());
    expect(receipt.request.subjects).toEqual(['ana']);
    expect(receipt.manifest).toEqual({ before: before.revision, after: after.revision });
    for (let e = 0; e < 4; e++) {
      const part = `expert/${e}`;
      if (receipt.plan.experts.includes(e))
        expect(after.objects[part]!.sha256).not.toBe(before.objects[part]!.sha256);
      else expect(after.objects[part]).toEqual(before.objects[part]);
    }
    expect(receipt.expertsRetrained).toEqual(receipt.plan.experts);
    expect(receipt.partsChanged.sort()).toEqual(
      ['router', ...receipt.plan.experts.map((e) => `expert/${e}`)].sort(),
    );
    // The evidence: UA, RA, TA and MIA-Efficacy on the forgotten samples, before and after.
    for (const m of [receipt.metrics.before, receipt.metrics.after]) {
      for (const value of [m.ua, m.ra, m.ta, m.miaEfficacy]) {
        expect(value).toBeGreaterThanOrEqual(0);
        expect(value).toBeLessThanOrEqual(100);
      }
      expect(m.measuredOn).toMatchObject({ trainForgotten: 3, trainRetained: train.size - 3 });
    }
    // The ledger holds the samples and the subject, citing this receipt.
    const erased = erasedOf(await readLedger(store));
    expect(erased.subjects.has('ana')).toBe(true);
    for (const s of receipt.request.sampleIds) expect(erased.sampleIds.has(s)).toBe(true);
    const event = erased.byRequest.get('forget-ana')!;
    expect(event).toMatchObject({
      mode: 'approximate',
      receipt: { sha256: after.objects['receipt/forget-ana']!.sha256 },
    });
    // The retraining's routing extends the lineage: one more epoch.
    expect((await readRoutingLineage(store))!.epochs).toHaveLength(7);
    // The next request of this method is estimated at the rates this one ran at.
    const next = await previewSampleForget({ store, train, test }, { sampleIds: [id(5)] });
    expect(next.estimate.rate).toMatchObject({ source: 'forget', requestId: 'forget-ana' });
    const history = receipt.history[0]!;
    expect(next.estimate.rate!.retrainingRate).toBeCloseTo(history.images / history.seconds, 6);
    // A later training on this store leaves the samples out.
    const { train: kept, honoured } = await honourLedger(store, train, subjects);
    expect(honoured.excluded).toMatchObject({ samples: 3, subjects: ['ana'] });
    for (const p of [3, 70, 150]) expect(kept.indices).not.toContain(train.indices[p]);
  }, 60_000);

  it('returns the same receipt for the same request id; refuses the subject again', async () => {
    const before = digest();
    expect(await forgetJointSamples({ store, train, test }, request)).toEqual(receipt);
    await expect(
      forgetJointSamples({ store, train, test }, { ...request, requestId: 'again' }),
    ).rejects.toMatchObject({
      code: 'failed-precondition',
      message: expect.stringMatching(/subject ana is already forgotten \(request forget-ana/),
    });
    await expect(
      forgetJointSamples({ store, train, test }, { requestId: 'one', sampleIds: [id(70)] }),
    ).rejects.toMatchObject({ code: 'failed-precondition' });
    await expect(
      forgetJointSamples({ store, train, test }, { ...request, epochs: 3 }),
    ).rejects.toMatchObject({ code: 'already-exists' });
    expect(digest()).toEqual(before);
  });

  it('refuses bad input with one clear error and changes nothing stored', async () => {
    const before = digest();
    const ctx = { store, train, test };
    const cases: [Parameters<typeof forgetJointSamples>[1], string, RegExp][] = [
      [{ subjects: ['nobody'] }, 'not-found', /subject "nobody" has no sample/],
      [{ sampleIds: ['shapes:train:99999'] }, 'not-found', /not in the model's training set/],
      [{ sampleIds: ['not an id'] }, 'invalid-argument', /malformed sample id/],
      [{}, 'invalid-argument', /name the samples or subjects/],
      [{ sampleIds: [id(5)], epochs: Number.NaN }, 'invalid-argument', /epochs/],
      [
        { sampleIds: [id(5)], method: 'gradient-ascent' as never },
        'invalid-argument',
        /unknown sample-forget method/,
      ],
      [{ sampleIds: [id(5)], requestId: 'Bad Id' }, 'invalid-argument', /invalid request id/],
    ];
    for (const [bad, code, message] of cases) {
      await expect(forgetJointSamples(ctx, bad), JSON.stringify(bad)).rejects.toMatchObject({
        code,
        message: expect.stringMatching(message),
      });
      await expect(previewSampleForget(ctx, bad)).rejects.toMatchObject({ code });
    }
    expect(digest()).toEqual(before);
  });
});
