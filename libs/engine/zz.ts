import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from './src/index';
(async () => {
  await initEngine({ log: () => undefined });
  for (const shape of [
    [128, 32, 32, 32],
    [128, 16, 16, 64],
  ] as [number, number, number, number][]) {
    const x = tf.relu(tf.randomUniform(shape, -1, 1)) as tf.Tensor4D;
    const f = () => tf.grad((a: tf.Tensor4D) => tf.sum(tf.maxPool(a, 2, 2, 'valid')))(x);
    for (let i = 0; i < 3; i++) {
      const p = await tf.profile(() => {
        f().dispose();
      });
      console.log(
        shape,
        p.kernels.map((k) => `${k.name}:${(k.kernelTimeMs as number).toFixed(1)}`).join(' '),
      );
    }
  }
})();
