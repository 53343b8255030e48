import { describe, expect, it } from 'vitest';
import {
  type Dataset,
  filterByClass,
  findSample,
  identityIndices,
  parseSampleId,
  sampleId,
  subset,
} from '../src/index';

/** n 2×2 images; every byte of image i is i, label i % 3. */
export function toy(n: number, name = 'toy'): Dataset {
  const images = new Uint8Array(n * 12);
  for (let i = 0; i < n; i++) images.fill(i, i * 12, (i + 1) * 12);
  return {
    name,
    split: 'train',
    classes: ['a', 'b', 'c'],
    height: 2,
    width: 2,
    channels: 3,
    size: n,
    images,
    labels: Int32Array.from({ length: n }, (_, i) => i % 3),
    indices: identityIndices(n),
    source: '/nowhere',
  };
}

describe('sample ids', () => {
  it('format and parse round-trip', () => {
    const ds = toy(5);
    expect(sampleId(ds, 4)).toBe('toy:train:4');
    expect(parseSampleId('cifar10:test:123')).toEqual({
      dataset: 'cifar10',
      split: 'test',
      index: 123,
    });
    expect(() => sampleId(ds, 5)).toThrow(/out of range/);
  });

  it('rejects malformed ids', () => {
    for (const bad of [
      '',
      'cifar10',
      'cifar10:train',
      'cifar10:val:1',
      'cifar10:train:-1',
      'cifar10:train:01',
      'cifar10:train:1.5',
      'cifar10:train:1:2',
      ':train:1',
      'cifar10:train:99999999999999999999',
    ]) {
      expect(() => parseSampleId(bad), bad).toThrow(/sample id/);
    }
  });
});

describe('subset and filterByClass', () => {
  it('keep the original indices, so ids survive subsetting', () => {
    const ds = toy(10);
    const sub = subset(ds, [7, 3, 9]);
    expect(sub.size).toBe(3);
    expect(Array.from(sub.indices)).toEqual([7, 3, 9]);
    expect(Array.from(sub.labels)).toEqual([1, 0, 0]);
    expect(Array.from(sub.images.subarray(12, 24))).toEqual(new Array(12).fill(3));
    expect(sampleId(sub, 0)).toBe('toy:train:7');
    const subsub = subset(sub, [2, 0]);
    expect([sampleId(subsub, 0), sampleId(subsub, 1)]).toEqual(['toy:train:9', 'toy:train:7']);
    expect(findSample(subsub, 'toy:train:7')).toBe(1);
    expect(findSample(subsub, 'toy:train:3')).toBe(-1);
    expect(findSample(subsub, 'toy:test:7')).toBe(-1);
    expect(findSample(subsub, 'other:train:7')).toBe(-1);
    expect(ds.size).toBe(10);
  });

  it('filters by class name or number, and excludes', () => {
    const ds = toy(10);
    const b = filterByClass(ds, 'b');
    expect(Array.from(b.indices)).toEqual([1, 4, 7]);
    expect(Array.from(b.labels)).toEqual([1, 1, 1]);
    const notB = filterByClass(ds, 1, { exclude: true });
    expect(Array.from(notB.indices)).toEqual([0, 2, 3, 5, 6, 8, 9]);
    expect(sampleId(notB, 2)).toBe('toy:train:3');
    expect(findSample(notB, 'toy:train:8')).toBe(5);
    expect(filterByClass(ds, ['a', 2]).size).toBe(7);
    expect(() => filterByClass(ds, 'zebra')).toThrow(/unknown class/);
  });

  it('carries coarse labels along', () => {
    const ds = { ...toy(4), coarseLabels: Int32Array.from([5, 6, 7, 8]) };
    expect(Array.from(subset(ds, [3, 1]).coarseLabels!)).toEqual([8, 6]);
  });
});
