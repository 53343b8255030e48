import { makeSyntheticDataset } from '@lethe/data';
import { initEngine } from '@lethe/engine';
import { appendErasures, dropErasure, honourLedger, readLedger, readRoster } from '@lethe/ledger';
import { ManifestStore, MemoryStore, putContent } from '@lethe/store';
import { forgetClass, ForgetRequestError } from '@lethe/unlearning';
import { beforeAll, describe, expect, it } from 'vitest';
import { runTrainJob, type TrainJobOptions } from '../src/jobs/train-job';

const train = makeSyntheticDataset({ perClass: 60, split: 'train', seed: 7, classes: 4 });
const test = makeSyntheticDataset({ perClass: 20, split: 'test', seed: 7, classes: 4 });
const store = new MemoryStore();
const FORGOTTEN = 1;
const className = train.classes[FORGOTTEN]!;

const job: TrainJobOptions = {
  data: { train, test },
  store,
  preset: 'tiny',
  experts: 4,
  topK: 2,
  epochs: 12,
  batchSize: 32,
  learningRate: 0.01,
  weightDecay: 0,
  schedule: 'one-cycle',
  seed: 1,
  augment: false,
  balanceWeight: 0.1,
  routerNoise: 1,
  specializeWeight: 0,
};

beforeAll(async () => {
  await initEngine({ engine: 'wasm', log: () => undefined });
});

describe('an erasure is forever', () => {
  it('a class forgotten stays out of the next training on the store, and stays forgotten', async () => {
    const first = await runTrainJob(job);
    expect(first.ledger.events).toBe(0);
    expect(first.test!.perClass[FORGOTTEN]!.accuracy).toBeGreaterThan(0.4);

    const receipt = await forgetClass(
      { store, train, test },
      { class: className, requestId: 'forget-1' },
    );
    const manifest = (await new ManifestStore(store).read())!;
    expect(manifest.revision).toBe(receipt.manifest.after);
    const ledger = await readLedger(store, manifest);
    expect(ledger.document.events).toEqual([
      expect.objectContaining({
        kind: 'erase',
        requestId: 'forget-1',
        mode: 'approximate',
        classes: [className],
        receipt: {
          key: manifest.objects['receipt/forget-1']!.key,
          sha256: manifest.objects['receipt/forget-1']!.sha256,
        },
      }),
    ]);

    const second = await runTrainJob(job);
    const classSize = Array.from(train.labels).filter((l) => l === FORGOTTEN).length;
    expect(second.trainSize).toBe(train.size - classSize);
    expect(second.ledger).toMatchObject({
      sha256: ledger.ref!.sha256,
      events: 1,
      excluded: { samples: classSize, classes: [className], subjects: [] },
      notInTrainingSet: 0,
    });
    const roster = (await readRoster(store))!;
    expect(roster.labels).not.toContain(FORGOTTEN);
    const record = (await new ManifestStore(store).read())!.attributes['training'] as {
      ledger: { sha256: string };
    };
    expect(record.ledger.sha256).toBe(ledger.ref!.sha256);
    // The new model never saw the class.
    expect(second.test!.perClass[FORGOTTEN]!.accuracy).toBeLessThan(0.05);
    expect(second.test!.accuracy).toBeGreaterThan(0.5);

    const again = forgetClass({ store, train, test }, { class: className, requestId: 'forget-2' });
    await expect(again).rejects.toThrow(ForgetRequestError);
    await expect(again).rejects.toThrow(/already forgotten \(request forget-1/);
  });

  it('trains on a store whose ledger holds samples of other data, and says so', async () => {
    const other = new MemoryStore();
    const receipt = await putContent(other, new TextEncoder().encode('{}'), { kind: 'receipt' });
    const ledger = await appendErasures(other, await readLedger(other), [
      { requestId: 'elsewhere', receipt, mode: 'exact', sampleIds: ['cifar10:train:3'] },
    ]);
    await new ManifestStore(other).update((d) => {
      d.objects['receipt/elsewhere'] = receipt;
      d.objects['ledger'] = ledger;
    });
    const messages: string[] = [];
    const result = await runTrainJob({
      ...job,
      store: other,
      epochs: 1,
      onStatus: (m) => messages.push(m),
    });
    expect(result.trainSize).toBe(train.size);
    expect(result.ledger).toMatchObject({ notInTrainingSet: 1, excluded: { samples: 0 } });
    expect(messages.join('\n')).toMatch(
      /1 erased sample ids are not in this training set \(nothing to exclude for them\)/,
    );
  });

  it('an operator drop lets the class back in, and the ledger keeps who and why', async () => {
    await dropErasure(store, { requestId: 'forget-1', reason: 'test of the drop', by: 'ops' });
    const { honoured } = await honourLedger(store, train);
    expect(honoured.excluded.samples).toBe(0);
    expect((await readLedger(store)).document.events.map((e) => e.kind)).toEqual(['erase', 'drop']);
  });
});
