import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { describeEngines, engineInfo, initEngine, type EngineName } from './index';

// One process per test file (vitest forks), and the engine is chosen once per process, so the
// order of these tests matters: failures first (they must not pin an engine), then the choice.

const installed = (engine: EngineName) =>
  describeEngines().find((e) => e.engine === engine)?.installed === true;

describe('initEngine', () => {
  afterEach(() => {
    delete process.env['LETHE_ENGINE'];
  });

  it('rejects an invalid LETHE_ENGINE, listing the valid ones', async () => {
    process.env['LETHE_ENGINE'] = 'tpu';
    await expect(initEngine()).rejects.toThrow(
      'LETHE_ENGINE=tpu is not a valid engine; use one of gpu, node, wasm, cpu',
    );
    expect(engineInfo()).toBeUndefined();
  });

  it.skipIf(installed('node'))('explains a forced engine that is not installed', async () => {
    process.env['LETHE_ENGINE'] = 'node';
    await expect(initEngine()).rejects.toThrow(
      'LETHE_ENGINE=node: @tensorflow/tfjs-node is not installed (its install downloads libtensorflow)',
    );
    await expect(initEngine({ engine: 'gpu' })).rejects.toThrow(
      "initEngine({ engine: 'gpu' }): @tensorflow/tfjs-node-gpu is not installed",
    );
    expect(engineInfo()).toBeUndefined();
  });

  it.skipIf(installed('node') || installed('gpu'))(
    'falls back to wasm, says why once, and then stays put',
    async () => {
      const lines: [string, Record<string, unknown>][] = [];
      const log = (message: string, fields: Record<string, unknown>) => {
        lines.push([message, fields]);
      };
      const info = await initEngine({ log });
      expect(info).toMatchObject({ engine: 'wasm', backend: 'wasm', simd: true, threads: 1 });
      expect(info.reason).toContain('@tensorflow/tfjs-node is not installed');
      expect(info.versions['tfjs-backend-wasm']).toBe(tf.version_core);
      expect(tf.getBackend()).toBe('wasm');
      expect(engineInfo()).toBe(info);

      expect(await initEngine({ log })).toBe(info);
      expect(await initEngine({ engine: 'wasm', log })).toBe(info);
      await expect(initEngine({ engine: 'cpu' })).rejects.toThrow("already initialised as 'wasm'");
      process.env['LETHE_ENGINE'] = 'cpu';
      await expect(initEngine()).rejects.toThrow('LETHE_ENGINE=cpu: the engine is already');

      expect(lines).toHaveLength(1);
      expect(lines[0]![0]).toBe('engine selected');
      expect(lines[0]![1]).toMatchObject({ engine: 'wasm', backend: 'wasm' });
    },
  );

  it('registers gradients and the kernels wasm lacks', () => {
    expect(tf.getGradient('RealDiv')).toBeDefined();
    const wasmKernels = tf.getKernelsForBackend('wasm').map((k) => k.kernelName);
    expect(wasmKernels).toEqual(
      expect.arrayContaining(['Conv2DBackpropFilter', 'UnsortedSegmentSum']),
    );
  });

  it('describes the engines without loading them', () => {
    const byName = Object.fromEntries(describeEngines().map((e) => [e.engine, e]));
    expect(byName['wasm']).toMatchObject({ installed: true, selected: true });
    expect(byName['cpu']).toMatchObject({ installed: true, selected: false });
    expect(byName['cpu']!.note).toContain('only when forced');
  });
});
