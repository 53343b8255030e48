import type { Dataset } from '@lethe/data';
import { describe, expect, it } from 'vitest';
import { heldOutLoss, OutputMemo } from '../src';

describe('OutputMemo', () => {
  it('round-trips through bytes and says what it still misses', () => {
    const memo = new OutputMemo(5, 3, 2);
    memo.probs.set([0.2, 0.3, 0.5], 3 * 3);
    memo.chosen.set([1, 0], 3 * 2);
    memo.known[3] = 1;
    const back = OutputMemo.decode(memo.encode(), 5, 3, 2)!;
    expect(back.probs).toEqual(memo.probs);
    expect(back.chosen).toEqual(memo.chosen);
    expect(back.count()).toBe(1);
    const ds = { indices: Int32Array.from([0, 1, 2, 3, 4]) } as unknown as Dataset;
    expect(Array.from(back.missing(ds, Int32Array.from([1, 3, 4])))).toEqual([1, 4]);
  });

  it('grows to the slots asked for, and refuses bytes of another shape', () => {
    const memo = new OutputMemo(5, 3, 2);
    memo.known[4] = 1;
    const bytes = memo.encode();
    const grown = OutputMemo.decode(bytes, 8, 3, 2)!;
    expect(grown.size).toBe(8);
    expect(grown.count()).toBe(1);
    expect(grown.known[4]).toBe(1);
    expect(OutputMemo.decode(bytes, 5, 3, 1)).toBeUndefined();
    expect(OutputMemo.decode(bytes.subarray(1), 5, 3, 2)).toBeUndefined();
  });

  it('gives the mean loss of the samples it holds: how an unseen sample looks to the model', () => {
    const memo = new OutputMemo(4, 2, 1);
    memo.probs.set([0.8, 0.2, 0.4, 0.6, 0.5, 0.5], 0);
    memo.known.set([1, 1, 0, 0]);
    const ds = {
      size: 3,
      indices: Int32Array.from([0, 1, 2]),
      labels: Int32Array.from([0, 0, 1]),
    } as unknown as Dataset;
    // Slot 2 is not measured: only −ln 0.8 and −ln 0.4 count.
    expect(heldOutLoss(memo, ds, 2)).toBeCloseTo(-(Math.log(0.8) + Math.log(0.4)) / 2, 6);
    expect(heldOutLoss(new OutputMemo(4, 2, 1), ds, 2)).toBeCloseTo(Math.log(2), 6);
  });
});
