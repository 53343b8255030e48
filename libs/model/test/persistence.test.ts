import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalDirStore } from '@lethe/store';
import {
  deserializeParameters,
  loadModel,
  readWeightsHeader,
  saveModel,
  serializeParameters,
} from '../src';
import { tinyModel, toyBatch, useWasm, weightsOf } from './helpers';

beforeAll(useWasm);

describe('saving and loading', () => {
  const dirs: string[] = [];
  const store = (): LocalDirStore => {
    const dir = mkdtempSync(join(tmpdir(), 'lethe-model-'));
    dirs.push(dir);
    return new LocalDirStore(dir);
  };
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const card: {
    classes: string[];
    normalisation: { mean: [number, number, number]; std: [number, number, number] };
  } = { classes: ['a', 'b', 'c'], normalisation: { mean: [0, 0, 0], std: [1, 1, 1] } };

  it('serialises a part deterministically and round-trips it exactly', () => {
    const a = tinyModel();
    const b = tinyModel({ seed: 99 });
    const bytes = serializeParameters(a.experts[2]!.params);
    expect(serializeParameters(a.experts[2]!.params)).toEqual(bytes);
    expect(readWeightsHeader(bytes).tensors.map((t) => t.name)).toContain('head/kernel');
    deserializeParameters(b.experts[2]!.params, bytes);
    expect(weightsOf(b, 'expert/2')).toEqual(weightsOf(a, 'expert/2'));
    expect(() => deserializeParameters(b.router.params, bytes)).toThrow(/mismatch|hold/);
    expect(() => deserializeParameters(b.router.params, bytes.subarray(0, 100))).toThrow();
    a.dispose();
    b.dispose();
  });

  it('stores each part as its own object and reloads identical predictions', async () => {
    const s = store();
    const model = tinyModel();
    const { x, y } = toyBatch(24);
    for (let i = 0; i < 3; i++) model.trainStep(x, y, { learningRate: 0.01 });
    const manifest = await saveModel(s, model, card);
    expect(Object.keys(manifest.objects).sort()).toEqual([
      'expert/0',
      'expert/1',
      'expert/2',
      'expert/3',
      'router',
    ]);
    const loaded = await loadModel(s);
    expect(loaded.card.classes).toEqual(card.classes);
    const p1 = model.predict(x);
    const p2 = loaded.model.predict(x);
    expect(Array.from(p2.dataSync())).toEqual(Array.from(p1.dataSync()));
    tf.dispose([p1, p2, x, y]);
    model.dispose();
    loaded.model.dispose();
  });

  it('rewrites only the parts that changed', async () => {
    const s = store();
    const model = tinyModel();
    const first = await saveModel(s, model, card);
    const { x, y } = toyBatch(24);
    model.trainStep(x, y, {
      learningRate: 0.01,
      trainable: new Set(['router', 'expert/2'] as const),
    });
    const second = await saveModel(s, model, card);
    expect(second.revision).toBe(first.revision + 1);
    for (const part of ['expert/0', 'expert/1', 'expert/3'])
      expect(second.objects[part]).toEqual(first.objects[part]);
    for (const part of ['router', 'expert/2'])
      expect(second.objects[part]!.sha256).not.toBe(first.objects[part]!.sha256);
    tf.dispose([x, y]);
    model.dispose();
  });

  it('says clearly when the store holds no model', async () => {
    await expect(loadModel(store())).rejects.toThrow(/no trained model/);
  });
});
