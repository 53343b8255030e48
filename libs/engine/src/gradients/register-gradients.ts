import {
  getGradient,
  registerGradient,
  version_core,
  type GradConfig,
} from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import path from 'node:path';
import { conv2dGradConfig } from './conv2d-grad';
import { meanGradConfig, sumGradConfig } from './reduce-grad';
import { topKGradConfig } from './topk-grad';

interface VendoredGradients {
  gradConfigs: GradConfig[];
  tfjsCoreVersion: string;
}

// Same relative location from src/gradients (tsx, vitest) and dist/gradients (built).
const VENDORED = path.join(__dirname, '..', '..', 'vendor', 'tfjs-core-gradients.cjs');

/**
 * Makes `tf.grad` work with plain @tensorflow/tfjs-core. Its Node entry registers no gradients
 * (they ship only as ES modules Node cannot load; see scripts/vendor-gradients.ts), so register
 * the vendored copies of tfjs-core's own definitions for every kernel that has none yet — a
 * gradient someone registered earlier (or that @tensorflow/tfjs-node brought) is kept — and
 * then our own for Conv2D (adds dilation), Sum and Mean (no JavaScript-built ones tensor)
 * and TopK (which tfjs-core lacks). Idempotent. Returns a one-line description.
 */
export function registerTrainingGradients(): string {
  const load = createRequire(__filename);
  const vendored = load(VENDORED) as VendoredGradients;
  let added = 0;
  for (const config of vendored.gradConfigs) {
    if (getGradient(config.kernelName) === undefined) {
      registerGradient(config);
      added++;
    }
  }
  // Replacements for tfjs-core's own (same results, dilation support or no JavaScript-built
  // ones tensor); TopK's fills a gap, so one registered by someone else stays.
  for (const config of [conv2dGradConfig, sumGradConfig, meanGradConfig]) registerGradient(config);
  if (getGradient(topKGradConfig.kernelName) === undefined) registerGradient(topKGradConfig);
  const mismatch =
    vendored.tfjsCoreVersion === version_core
      ? ''
      : ` (installed tfjs-core is ${version_core}: rerun libs/engine/scripts/vendor-gradients.ts)`;
  return `${added} gradients from tfjs-core ${vendored.tfjsCoreVersion}${mismatch}`;
}
