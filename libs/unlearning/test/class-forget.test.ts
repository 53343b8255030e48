import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batches, channelStats, makeSyntheticDataset } from '@lethe/data';
import { initEngine } from '@lethe/engine';
import { MoEModel, saveModel, trainModel } from '@lethe/model';
import { LocalDirStore, ManifestStore } from '@lethe/store';
import {
  DEFAULT_FORGET_RECIPE,
  type ForgetReceipt,
  forgetClass,
  listReceipts,
  outputsKey,
  previewClassForget,
  RESIDUAL_CLASS_ACCURACY,
  residualClassWarning,
} from '../src';

const train = makeSyntheticDataset({ perClass: 100, split: 'train', seed: 3, classes: 4 });
const test = makeSyntheticDataset({ perClass: 25, split: 'test', seed: 3, classes: 4 });
const dir = mkdtempSync(join(tmpdir(), 'lethe-forget-'));
const store = new LocalDirStore(dir);
/** The trained model before any forget, for tests that need it untouched. */
const pristine = mkdtempSync(join(tmpdir(), 'lethe-forget-pristine-'));
const revision = async (): Promise<number> => (await new ManifestStore(store).read())!.revision;

beforeAll(async () => {
  await initEngine({ engine: 'wasm', log: () => undefined });
  const normalise = channelStats(train);
  const model = new MoEModel({
    preset: 'tiny',
    experts: 4,
    topK: 2,
    numClasses: 4,
    inputShape: [32, 32, 3],
    routerNoise: 1,
    balanceWeight: 0.1,
    seed: 1,
  });
  await trainModel(model, {
    epochs: 8,
    stepsPerEpoch: Math.floor(train.size / 32),
    learningRate: 0.01,
    batches: (epoch) =>
      batches(train, { batchSize: 32, seed: 1, epoch, dropLast: true, normalise }),
  });
  await saveModel(
    store,
    model,
    { classes: train.classes, normalisation: normalise },
    {
      attributes: {
        training: {
          mode: 'joint',
          dataset: 'synthetic',
          epochs: 4,
          batchSize: 32,
          learningRate: 0.01,
          schedule: 'one-cycle',
          weightDecay: 0,
          augment: false,
          seed: 1,
        },
      },
    },
  );
  model.dispose();
  cpSync(dir, pristine, { recursive: true });
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(pristine, { recursive: true, force: true });
});

/** sha256 of every file in the store directory: what "nothing changed" means. */
function storeDigest(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const path = join(dir, name);
    if (statSync(path).isFile()) {
      out[name] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  }
  return out;
}

describe('previewing a class forget (dry run)', () => {
  it('plans, estimates the cost and changes nothing stored', async () => {
    const before = storeDigest();
    const preview = await previewClassForget({ store, train, test }, { class: 'disc' });
    expect(storeDigest()).toEqual(before);
    expect(preview.request).toMatchObject({
      classIndex: 1,
      method: 'targeted',
      ...DEFAULT_FORGET_RECIPE.targeted,
    });
    const { plan, estimate } = preview;
    expect(plan.experts.length).toBeGreaterThan(0);
    expect(plan.expertCollateral).toHaveLength(plan.experts.length);
    // Together the chosen experts carry at most the sum of what each carries.
    const sum = plan.expertCollateral.reduce((a, b) => a + b, 0);
    expect(plan.collateral).toBeCloseTo(sum, 6);
    expect(plan.samples).toBe(100);
    // Every forgotten sample and a fifth of the 300 retained ones, for one epoch.
    expect(estimate).toMatchObject({ trainingSamples: 160, epochs: 1 });
    expect(estimate.expertSampleWork).toBe(160 * plan.experts.length);
    expect(estimate.measuredSamples).toBe(400 + test.size);
    // Nothing has measured these weights yet: the "before" runs on every sample.
    expect(estimate.measuredBeforeReused).toBe(0);
    // The stored training record has no timings, so no seconds are made up.
    expect(estimate.seconds).toBeUndefined();
  });

  it('takes the same checks as a real forget', async () => {
    const ctx = { store, train, test };
    await expect(previewClassForget(ctx, { class: 'hexagon' })).rejects.toMatchObject({
      code: 'not-found',
    });
    for (const bad of [{ epochs: Number.NaN }, { epochs: 4294967295 }, { learningRate: -1 }]) {
      await expect(previewClassForget(ctx, { class: 'disc', ...bad })).rejects.toMatchObject({
        code: 'invalid-argument',
      });
    }
    await expect(
      previewClassForget(ctx, { class: 'disc', retainFraction: Number.NaN }),
    ).rejects.toThrow(/retain fraction must be in \(0, 1\], got NaN/);
  });
});

describe('forgetting a class (targeted)', () => {
  let receipt: ForgetReceipt;
  const request = {
    requestId: 'forget-disc-1',
    class: 'disc',
    epochs: 3,
    learningRate: 0.003,
    batchSize: 32,
  };

  it('retrains only the chosen experts and the router, and the class is forgotten', async () => {
    const before = await new ManifestStore(store).read();
    receipt = await forgetClass({ store, train, test }, request);
    const after = (await new ManifestStore(store).read())!;
    expect(receipt.mode).toBe('approximate');
    expect(receipt.request.classIndex).toBe(1);
    expect(receipt.request.loss).toBe('distill');
    expect(receipt.plan.activations.reduce((a, b) => a + b, 0)).toBe(100 * 2);
    expect(receipt.plan.coverage).toBeGreaterThanOrEqual(0.8);
    expect(receipt.expertsRetrained).toEqual(receipt.plan.experts);
    expect(receipt.manifest).toEqual({ before: before!.revision, after: after.revision });
    // Frozen experts: same objects (bit-identical weights); chosen ones and the router: new.
    for (let e = 0; e < 4; e++) {
      const part = `expert/${e}`;
      if (receipt.plan.experts.includes(e))
        expect(after.objects[part]!.sha256).not.toBe(before!.objects[part]!.sha256);
      else expect(after.objects[part]).toEqual(before!.objects[part]);
    }
    expect(after.objects['router']!.sha256).not.toBe(before!.objects['router']!.sha256);
    expect(receipt.partsChanged.sort()).toEqual(
      ['router', ...receipt.plan.experts.map((e) => `expert/${e}`)].sort(),
    );
    expect(receipt.weights.after['router']).toBe(after.objects['router']!.sha256);
    // It worked: the class is no longer recognised, the others still are.
    expect(receipt.metrics.before.forgottenClassTestAccuracy).toBeGreaterThan(50);
    expect(receipt.metrics.after.forgottenClassTestAccuracy).toBeLessThan(
      receipt.metrics.before.forgottenClassTestAccuracy / 2,
    );
    expect(receipt.metrics.after.ua).toBeGreaterThan(receipt.metrics.before.ua);
    expect(receipt.metrics.after.ta).toBeGreaterThan(50);
    // Nothing is masked, so the raw outputs are the served ones.
    expect(receipt.metrics.after.unmasked).toEqual({
      ua: receipt.metrics.after.ua,
      forgottenClassTestAccuracy: receipt.metrics.after.forgottenClassTestAccuracy,
      miaEfficacy: receipt.metrics.after.miaEfficacy,
    });
    expect(receipt.frozenExpertPasses!.computed).toBeLessThanOrEqual(
      train.size * (4 - receipt.plan.experts.length),
    );
    expect(receipt.frozenExpertPasses!.reused).toBeGreaterThan(0);
    expect(await listReceipts(store)).toEqual([receipt]);
    // A small set is measured whole; the receipt says on what.
    expect(receipt.metrics.after.measuredOn).toMatchObject({
      mode: 'sample',
      trainForgotten: 100,
      trainRetained: 300,
      trainRetainedOf: 300,
      test: test.size,
    });
  });

  it('is idempotent by request id and refuses a reused id for another request', async () => {
    const rev = await revision();
    expect(await forgetClass({ store, train, test }, request)).toEqual(receipt);
    await expect(
      forgetClass({ store, train, test }, { ...request, epochs: 4 }),
    ).rejects.toMatchObject({ code: 'already-exists' });
    expect(await revision()).toBe(rev);
  });

  it('estimates the next forget knowing its "before" is what this one measured after', async () => {
    const { estimate } = await previewClassForget({ store, train, test }, { class: 'cross' });
    expect(estimate.measuredBeforeReused).toBe(estimate.measuredSamples);
    // ... and at the rates this one ran at, published with its receipt.
    expect(estimate.rate).toMatchObject({ source: 'forget', requestId: receipt.requestId });
    expect(estimate.seconds!.total).toBeGreaterThan(0);
  });

  it('rejects bad requests with a clear error and leaves the store untouched', async () => {
    const rev = await revision();
    const ctx = { store, train, test };
    await expect(forgetClass(ctx, { class: 'disc' })).rejects.toMatchObject({
      code: 'failed-precondition',
      message: expect.stringMatching(/already forgotten/),
    });
    await expect(previewClassForget(ctx, { class: 'disc' })).rejects.toMatchObject({
      code: 'failed-precondition',
    });
    await expect(forgetClass(ctx, { class: 'hexagon' })).rejects.toMatchObject({
      code: 'not-found',
      message: expect.stringMatching(/unknown class "hexagon"/),
    });
    await expect(
      forgetClass(ctx, { class: '0', method: 'finetune', select: 'top:1' }),
    ).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(forgetClass(ctx, { class: '0', select: 'top:0' })).rejects.toThrow(
      /invalid expert selection/,
    );
    await expect(forgetClass(ctx, { class: '0', requestId: 'Bad Id' })).rejects.toThrow(
      /invalid request id/,
    );
    // "before" metrics of another class (and an older model) are not reused.
    await expect(
      forgetClass({ ...ctx, beforeFrom: receipt }, { class: 'cross', method: 'mask' }),
    ).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringMatching(/reused/) });
    const empty = new LocalDirStore(join(dir, 'empty'));
    await expect(forgetClass({ store: empty, train, test }, { class: '0' })).rejects.toMatchObject({
      code: 'failed-precondition',
    });
    expect(await revision()).toBe(rev);
  });

  it('keeps the outputs of the new weights only, for the next forget to reuse', async () => {
    const cached = (await store.list('cache/outputs/')).map((o) => o.key);
    const key = outputsKey(receipt.weights.after, train, test);
    expect(cached.sort()).toEqual([`cache/outputs/${key}/test`, `cache/outputs/${key}/train`]);
  });

  it('retrains on every forgotten sample and a share of the retained ones when asked', async () => {
    const messages: string[] = [];
    const subset = await forgetClass(
      { store, train, test, onStatus: (m) => messages.push(m) },
      {
        class: 'cross',
        loss: 'complement-ce',
        epochs: 1,
        learningRate: 0.003,
        batchSize: 32,
        retainFraction: 0.25,
      },
    );
    expect(subset.request.loss).toBe('complement-ce');
    // "Before" came from the previous forget's "after": the same weights, measured once.
    expect(messages).toContain(
      `the store held the outputs of ${train.size + test.size} samples measured earlier on these weights`,
    );
    expect(subset.metrics.before.perClassTest).toEqual(receipt.metrics.after.perClassTest);
    // Two forgets in a row: disc, forgotten first, stays forgotten after cross's.
    expect(subset.metrics.after.perClassTest[1]).toBeLessThan(
      receipt.metrics.before.forgottenClassTestAccuracy / 2,
    );
    expect(subset.metrics.after.ua).toBeGreaterThan(subset.metrics.before.ua);
    // cross has 100 training samples; the erasure ledger takes disc's 100 out, and a quarter of
    // the 200 retained ones is 50.
    expect(subset.history.map((h) => h.images)).toEqual([150]);
    expect(subset.request.retainFraction).toBe(0.25);
    expect(subset.frozenExpertPasses!.computed).toBeLessThanOrEqual(
      150 * (4 - subset.plan.experts.length),
    );
  });

  it('mask suppresses the class at the output without touching any weights', async () => {
    const before = (await new ManifestStore(store).read())!;
    const messages: string[] = [];
    const masked = await forgetClass(
      { store, train, test, onStatus: (m) => messages.push(m) },
      { class: 'square', method: 'mask' },
    );
    const after = (await new ManifestStore(store).read())!;
    expect(masked.partsChanged).toEqual([]);
    expect(masked.suppressClasses).toEqual([0]);
    expect(masked.metrics.after.forgottenClassTestAccuracy).toBe(0);
    // The weights still know the class: unmasked, nothing changed.
    const { before: was, after: now } = masked.metrics;
    expect(was.unmasked.forgottenClassTestAccuracy).toBe(was.forgottenClassTestAccuracy);
    expect(now.unmasked).toEqual(was.unmasked);
    // ...and still recognise it well above chance (25% with 4 classes).
    expect(now.unmasked.forgottenClassTestAccuracy).toBeGreaterThan(30);
    for (const part of ['router', 'expert/0', 'expert/1', 'expert/2', 'expert/3']) {
      expect(after.objects[part]).toEqual(before.objects[part]);
    }
    // Keeping the weights is what a mask is for: no warning about them.
    expect(messages.filter((m) => m.startsWith('warning:'))).toEqual([]);
  });

  it('warns when the retrained weights still recognise the class', async () => {
    const messages: string[] = [];
    // A step too small to move anything: the forget completes, and its evidence says it fell short.
    const short = await forgetClass(
      { store: new LocalDirStore(pristine), train, test, onStatus: (m) => messages.push(m) },
      { class: 'disc', epochs: 1, learningRate: 1e-9, batchSize: 32 },
    );
    const left = short.metrics.after.unmasked.forgottenClassTestAccuracy;
    expect(left).toBeGreaterThan(RESIDUAL_CLASS_ACCURACY);
    expect(messages).toContain(
      `warning: the weights still recognise disc in ${left.toFixed(1)}% of its test ` +
        'images (a model trained without it: about 0%); the erasure ledger holds the class, so the ' +
        'next training on this store leaves it out',
    );
  });
});

describe('timing a measurement', () => {
  it('counts the threads that computed the outputs in the seconds the next estimate reads', async () => {
    const copy = mkdtempSync(join(tmpdir(), 'lethe-forget-threads-'));
    cpSync(pristine, copy, { recursive: true });
    // Enough samples for two threads (each takes at least 1,000).
    const bigTest = makeSyntheticDataset({ perClass: 600, split: 'test', seed: 5, classes: 4 });
    const notes: string[] = [];
    try {
      const receipt = await forgetClass(
        {
          store: new LocalDirStore(copy),
          train,
          test: bigTest,
          measureThreads: 2,
          onStatus: (m) => notes.push(m),
        },
        { class: train.classes[3]!, method: 'mask' },
      );
      expect(notes).toContain('(the model ran on 2 threads)');
      // The next forget's estimate divides the samples measured by these seconds.
      const { before, after } = receipt.metrics;
      expect(before.seconds + after.seconds).toBeGreaterThan(0.8 * receipt.timings.measureSeconds);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('the residual-class warning', () => {
  it('speaks when the unmasked forgotten-class accuracy is above the threshold, not for mask', () => {
    const receipt = (left: number, method: ForgetReceipt['request']['method']): ForgetReceipt => {
      const after = { unmasked: { ua: 0, forgottenClassTestAccuracy: left, miaEfficacy: 0 } };
      return {
        request: { method, className: 'cat' },
        metrics: { after },
      } as unknown as ForgetReceipt;
    };
    expect(residualClassWarning(receipt(0.8, 'targeted'))).toBeUndefined();
    expect(residualClassWarning(receipt(RESIDUAL_CLASS_ACCURACY, 'targeted'))).toBeUndefined();
    expect(residualClassWarning(receipt(12.5, 'targeted'))).toMatch(
      /^warning: the weights still recognise cat in 12\.5% of its test images/,
    );
    expect(residualClassWarning(receipt(12.5, 'finetune'))).toBeDefined();
    expect(residualClassWarning(receipt(80, 'mask'))).toBeUndefined();
  });
});
