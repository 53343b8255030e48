import {
  DEFAULT_SELECTION,
  formatSelectionRule,
  type SelectionRule,
  selectExperts,
} from './expert-selection';
import { MetricsError } from './errors';

/**
 * How well a Mixture of Experts routes for forgetting, from a [class][expert] table of routing
 * slots (each sample fills k slots). Percentages 0–100; utilisation in multiples of the fair
 * share. See docs/metrics.md.
 */
export interface RoutingHealth {
  /** Per expert: its share of all slots divided by the fair share 1/E (1 = fair). */
  utilisation: number[];
  /** Experts below DEAD_EXPERT_SHARE of their fair share. */
  deadExperts: number[];
  /** Per class: % of its slots on its k busiest experts. */
  concentration: number[];
  /** Per class: the experts a forget of that class would retrain (the selection rule). */
  plannedExperts: number[][];
  /**
   * Per class: % of the OTHER classes' slots carried by `plannedExperts` — the traffic a forget
   * of that class disturbs and must recompute.
   */
  collateral: number[];
  meanConcentration: number;
  meanCollateral: number;
  minUtilisation: number;
  maxUtilisation: number;
  /** The selection rule the plans were made with, e.g. `coverage:0.8`. */
  rule: string;
}

/** An expert with less than this share of its fair load is reported as dead. */
export const DEAD_EXPERT_SHARE = 0.1;

/** Computes routing health; `topK` is the number of experts each sample is routed to. */
export function routingHealth(
  slots: readonly (readonly number[])[],
  topK: number,
  rule: SelectionRule = DEFAULT_SELECTION,
): RoutingHealth {
  const experts = slots[0]?.length ?? 0;
  if (experts === 0) throw new MetricsError('routing health needs a [class][expert] slot table');
  if (slots.some((row) => row.length !== experts)) {
    throw new MetricsError('every class needs one slot count per expert');
  }
  if (!Number.isInteger(topK) || topK < 1 || topK > experts) {
    throw new MetricsError(`top-k must be between 1 and ${experts}, got ${topK}`);
  }
  const perExpert = Array.from({ length: experts }, (_, e) =>
    slots.reduce((n, row) => n + row[e]!, 0),
  );
  const total = perExpert.reduce((a, b) => a + b, 0);
  const utilisation = perExpert.map((n) => (total > 0 ? (n * experts) / total : 0));
  const classTotals = slots.map((row) => row.reduce((a, b) => a + b, 0));
  const populated = slots.map((_, c) => c).filter((c) => classTotals[c]! > 0);
  const concentration = slots.map((row, c) => {
    const top = [...row].sort((a, b) => b - a).slice(0, topK);
    return classTotals[c]! > 0 ? (100 * top.reduce((a, b) => a + b, 0)) / classTotals[c]! : 0;
  });
  const plannedExperts = slots.map((row, c) =>
    classTotals[c]! > 0 ? selectExperts(row, rule) : [],
  );
  const collateral = slots.map((_, c) => {
    const others = total - classTotals[c]!;
    if (others <= 0 || classTotals[c] === 0) return 0;
    const carried = plannedExperts[c]!.reduce((n, e) => n + perExpert[e]! - slots[c]![e]!, 0);
    return (100 * carried) / others;
  });
  const mean = (values: number[]): number =>
    populated.length > 0 ? populated.reduce((n, c) => n + values[c]!, 0) / populated.length : 0;
  return {
    utilisation,
    deadExperts: utilisation.flatMap((u, e) => (u < DEAD_EXPERT_SHARE ? [e] : [])),
    concentration,
    plannedExperts,
    collateral,
    meanConcentration: mean(concentration),
    meanCollateral: mean(collateral),
    minUtilisation: Math.min(...utilisation),
    maxUtilisation: Math.max(...utilisation),
    rule: formatSelectionRule(rule),
  };
}

/** One line for logs and progress: `collateral 18.2%, concentration 91.0%, load 0.62–1.41× fair, dead: none`. */
export function formatRoutingHealth(health: RoutingHealth): string {
  const dead =
    health.deadExperts.length === 0 ? 'none' : health.deadExperts.map((e) => `e${e}`).join(' ');
  return (
    `collateral ${health.meanCollateral.toFixed(1)}% (${health.rule}), concentration ${health.meanConcentration.toFixed(1)}%, ` +
    `load ${health.minUtilisation.toFixed(2)}–${health.maxUtilisation.toFixed(2)}× fair, dead experts: ${dead}`
  );
}
