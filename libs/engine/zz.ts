import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from './src/index';
import * as k from './src/kernels/conv2d-backprop-filter';
(async () => {
  await initEngine({ log: () => undefined });
  const shapes: [number[], number[], number][] = [[[128, 32, 32, 3], [3, 3, 3, 32], 1], [[128, 16, 16, 32], [3, 3, 32, 64], 1], [[128, 8, 8, 64], [3, 3, 64, 128], 1], [[128, 32, 32, 8], [3, 3, 8, 32], 1], [[128, 16, 16, 16], [3, 3, 16, 32], 1], [[128, 32, 32, 32], [3, 3, 32, 32], 1]];
  for (const [xs, fs, s] of shapes) {
    const x = tf.randomUniform(xs); const y = tf.conv2d(x as tf.Tensor4D, tf.zeros(fs) as tf.Tensor4D, s, 'same'); const dy = tf.randomUniform(y.shape);
    const best: Record<string, number> = {};
    for (const patchLimit of [1e9, 0, 1e9, 0, 1e9, 0]) {
      (k as unknown as { setSmallPatch?: (n: number) => void }).setSmallPatch?.(patchLimit);
      const name = patchLimit ? 'matmul' : 'conv';
      const t = process.cpuUsage(); const r = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: s, pad: 'same', filterShape: fs, dataFormat: 'NHWC' }) as tf.Tensor; r.dataSync(); r.dispose(); const u = process.cpuUsage(t);
      best[name] = Math.min(best[name] ?? 1e9, (u.user + u.system) / 1000);
    }
    console.log(JSON.stringify(xs), fs[3], 'patch', fs[0] * fs[1] * fs[2], JSON.stringify(best));
  }
})();
