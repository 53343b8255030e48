import { describe, expect, it } from 'vitest';
import type { Dataset } from '@lethe/data';
import { measurePositions, measureSample, SAMPLE_MEASURE } from '../src';

// measurePositions reads only labels and size.
const dataset = (labels: number[]): Dataset =>
  ({ size: labels.length, labels: Int32Array.from(labels) }) as unknown as Dataset;

describe('measurePositions', () => {
  const big = dataset(Array.from({ length: 12_000 }, (_, i) => i % 10));

  it('sample: every forgotten sample and a seeded, bounded share of the retained ones', () => {
    const positions = measurePositions(big, 3, 'sample', 0);
    const forgotten = Array.from(positions).filter((p) => p % 10 === 3);
    expect(forgotten).toHaveLength(1200);
    // The retained ones come from one seeded sample of the whole set, whatever the class.
    const sample = measureSample(big, 0);
    expect(sample).toHaveLength(SAMPLE_MEASURE.retained);
    expect(Array.from(positions).filter((p) => p % 10 !== 3)).toEqual(
      Array.from(sample).filter((p) => p % 10 !== 3),
    );
    expect(measurePositions(big, 4, 'sample', 0).filter((p) => p % 10 === 3)).toEqual(
      Int32Array.from(Array.from(sample).filter((p) => p % 10 === 3)),
    );
    expect(Array.from(positions)).toEqual(Array.from(positions).sort((a, b) => a - b));
    expect(measurePositions(big, 3, 'sample', 0)).toEqual(positions);
    expect(measurePositions(big, 3, 'sample', 1)).not.toEqual(positions);
  });

  it('full, or a set smaller than the bound: every position', () => {
    expect(measurePositions(big, 3, 'full', 0)).toHaveLength(12_000);
    expect(measurePositions(dataset([0, 1, 2, 1]), 1, 'sample', 0)).toEqual(
      Int32Array.from([0, 1, 2, 3]),
    );
  });
});
