import type { ModelCard, MoEConfig } from '@lethe/model';
import type { ModelSpec } from '@lethe/proto';

/** What a worker needs to build the experts of a model (ModelSpec in worker.proto). */
export function modelSpecOf(
  config: MoEConfig,
  normalisation: ModelCard['normalisation'],
): ModelSpec {
  return {
    preset: config.preset,
    numClasses: config.numClasses,
    inputShape: [...config.inputShape],
    normalisation: { mean: [...normalisation.mean], std: [...normalisation.std] },
    experts: config.experts,
    seed: config.seed,
  };
}
