import { batches, type ChannelStats, type Dataset } from '@lethe/data';
import { formatSelectionRule, routingHealth, type SelectionRule } from '@lethe/metrics';
import { batchToTensor, type MoEModel } from '@lethe/model';
import type { ClassForgetPlan } from '@lethe/ledger';

/** Where the router sends every training sample today (inference mode, no noise). */
export interface TrainingRouting {
  topK: number;
  /** [size * k] the experts each training position goes to, position-major. */
  chosen: Int32Array;
  /** [class][expert] routing slots over the training set. */
  slots: number[][];
  seconds: number;
}

// Stored in receipts: the schema is @lethe/ledger's.
export type { ClassForgetPlan } from '@lethe/ledger';

/**
 * Runs the router alone over the training set: the router is a fraction of an expert's cost,
 * and knowing where every sample goes lets a plan say what a forget disturbs and lets the
 * retraining subset favour the samples whose outputs it can change.
 */
export async function routeTrainingSet(
  model: MoEModel,
  train: Dataset,
  normalise: ChannelStats,
  signal?: AbortSignal,
): Promise<TrainingRouting> {
  const started = performance.now();
  const { topK, experts, numClasses } = model.config;
  const chosen = new Int32Array(train.size * topK);
  const slots = Array.from({ length: numClasses }, () => new Array<number>(experts).fill(0));
  let offset = 0;
  for (const batch of batches(train, { batchSize: 256, shuffle: false, normalise })) {
    // Minutes on a large set: let a server answer calls, and a cancel stop, between batches.
    await new Promise((resolve) => setImmediate(resolve));
    if (signal?.aborted) throw new Error('forgetting cancelled');
    const x = batchToTensor(model, batch);
    const assignments = model.route(x);
    x.dispose();
    const filled = new Int32Array(batch.size);
    assignments.forEach((positions, e) => {
      for (const b of positions) {
        chosen[(offset + b) * topK + filled[b]!++] = e;
        slots[train.labels[offset + b]!]![e]!++;
      }
    });
    offset += batch.size;
  }
  return { topK, chosen, slots, seconds: (performance.now() - started) / 1000 };
}

/** Picks the experts that saw most of the class, from where the router sends its samples. */
export function planClassForget(
  routing: TrainingRouting,
  train: Dataset,
  classIndex: number,
  rule: SelectionRule,
): ClassForgetPlan {
  const activations = routing.slots[classIndex];
  const className = train.classes[classIndex] ?? String(classIndex);
  if (!activations || activations.every((n) => n === 0)) {
    throw new Error(`class ${className} has no training samples`);
  }
  const health = routingHealth(routing.slots, routing.topK, rule);
  const experts = health.plannedExperts[classIndex]!;
  const total = activations.reduce((a, b) => a + b, 0);
  const others = routing.slots.reduce(
    (n, row, c) => (c === classIndex ? n : n + row.reduce((a, b) => a + b, 0)),
    0,
  );
  const otherSlots = (e: number): number =>
    routing.slots.reduce((n, row, c) => (c === classIndex ? n : n + row[e]!), 0);
  return {
    classIndex,
    className,
    samples: total / routing.topK,
    activations,
    rule: formatSelectionRule(rule),
    experts,
    coverage: experts.reduce((n, e) => n + activations[e]!, 0) / total,
    expertCollateral: experts.map((e) => (others > 0 ? (100 * otherSlots(e)) / others : 0)),
    collateral: health.collateral[classIndex]!,
    retainedRouted: routedTo(routing, train, experts, (label) => label !== classIndex).length,
  };
}

/** Positions whose label passes `keep` and that the router sends to at least one of `experts`. */
export function routedTo(
  routing: TrainingRouting,
  train: Dataset,
  experts: readonly number[],
  keep: (label: number) => boolean,
): Int32Array {
  const wanted = new Set(experts);
  const out: number[] = [];
  for (let i = 0; i < train.size; i++) {
    if (!keep(train.labels[i]!)) continue;
    for (let j = 0; j < routing.topK; j++) {
      if (wanted.has(routing.chosen[i * routing.topK + j]!)) {
        out.push(i);
        break;
      }
    }
  }
  return Int32Array.from(out);
}
