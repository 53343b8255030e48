import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { quietCpuBackend } from './index';

const BANNER = /looks like you are running TensorFlow\.js in Node\.js/;

/** What console.warn printed while a fresh cpu backend `name` wrote its first tensor. */
async function firstTensorWarnings(name: string, quiet: boolean): Promise<string[]> {
  tf.registerBackend(name, () => new MathBackendCPU(), 0);
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    await tf.setBackend(name);
    if (quiet) quietCpuBackend(name);
    tf.tensor([1, 2, 3]).dispose();
    return warn.mock.calls.map((args) => args.map(String).join(' '));
  } finally {
    warn.mockRestore();
  }
}

describe('quietCpuBackend', () => {
  afterEach(() => {
    for (const name of ['cpu-banner', 'cpu-quiet']) {
      if (tf.findBackend(name)) tf.removeBackend(name);
    }
  });

  it('keeps the cpu backend from printing its "install our node backend" banner', async () => {
    // The probe sees the banner when nothing silences it, so its absence below means something.
    expect(await firstTensorWarnings('cpu-banner', false)).toEqual([expect.stringMatching(BANNER)]);
    expect(await firstTensorWarnings('cpu-quiet', true)).toEqual([]);
  });

  it('does nothing for a backend that is not registered', () => {
    expect(() => quietCpuBackend('no-such-backend')).not.toThrow();
  });
});
