import { batches, type ChannelStats, type Dataset } from '@lethe/data';
import { batchToTensor, type MoEModel } from '@lethe/model';
import { formatSelectionRule, type SelectionRule, selectExperts } from './expert-selection';

export interface ClassForgetPlan {
  classIndex: number;
  className: string;
  /** Training samples of the class the router was run on. */
  samples: number;
  /** Per expert: how often it was among a sample's top k. */
  activations: number[];
  rule: string;
  experts: number[];
  /** Share of the class's activations the chosen experts receive. */
  coverage: number;
}

/**
 * Runs the router (inference mode, no noise) over the class's training samples and picks the
 * experts that see most of them: those are the ones that can have learned the class.
 */
export function planClassForget(
  model: MoEModel,
  train: Dataset,
  classIndex: number,
  normalise: ChannelStats,
  rule: SelectionRule,
): ClassForgetPlan {
  const positions = Int32Array.from({ length: train.size }, (_, i) => i).filter(
    (i) => train.labels[i] === classIndex,
  );
  if (positions.length === 0) {
    throw new Error(`class ${train.classes[classIndex] ?? classIndex} has no training samples`);
  }
  const activations = new Array<number>(model.config.experts).fill(0);
  for (const batch of batches(train, {
    batchSize: 256,
    shuffle: false,
    normalise,
    indices: positions,
  })) {
    // The router alone decides; experts need not run (nor be held here, as on a coordinator).
    const x = batchToTensor(model, batch);
    model.route(x).forEach((positions, e) => (activations[e]! += positions.length));
    x.dispose();
  }
  const experts = selectExperts(activations, rule);
  const total = activations.reduce((a, b) => a + b, 0);
  return {
    classIndex,
    className: train.classes[classIndex] ?? String(classIndex),
    samples: positions.length,
    activations,
    rule: formatSelectionRule(rule),
    experts,
    coverage: experts.reduce((n, e) => n + activations[e]!, 0) / total,
  };
}
