/** How to pick the experts to retrain from their activation counts on the forgotten data. */
export type SelectionRule = { kind: 'coverage'; fraction: number } | { kind: 'top'; count: number };

// 0.99, not 0.8 or 0.95: the experts left frozen keep what they learned of the class from the
// few slots they carried (1–3% test accuracy left at 0.8; 2% at 0.95 on 50,000 images), and the
// retraining's cost is set by its samples, not by how many experts it updates (BENCHMARKS.md,
// unlearn-class notes; docs/routing.md).
export const DEFAULT_SELECTION: SelectionRule = { kind: 'coverage', fraction: 0.99 };

/** Parses `coverage:0.8` or `top:2`. */
export function parseSelectionRule(text: string): SelectionRule {
  const [kind, value] = text.split(':');
  const n = Number(value);
  if (kind === 'coverage' && value !== undefined && n > 0 && n <= 1) {
    return { kind: 'coverage', fraction: n };
  }
  if (kind === 'top' && value !== undefined && Number.isInteger(n) && n >= 1) {
    return { kind: 'top', count: n };
  }
  throw new Error(
    `invalid expert selection ${JSON.stringify(text)}: expected coverage:F with 0 < F ≤ 1, or top:N with N ≥ 1`,
  );
}

export function formatSelectionRule(rule: SelectionRule): string {
  return rule.kind === 'coverage' ? `coverage:${rule.fraction}` : `top:${rule.count}`;
}

/**
 * Experts in decreasing order of activations (ties to the lower index), cut where the rule
 * says: the smallest prefix covering `fraction` of all activations (at least one expert), or
 * the first `count` (at most all).
 */
export function selectExperts(activations: readonly number[], rule: SelectionRule): number[] {
  if (activations.length === 0) throw new Error('no experts to select from');
  const order = activations
    .map((n, e) => [n, e] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .map(([, e]) => e);
  if (rule.kind === 'top') return order.slice(0, Math.min(rule.count, order.length));
  const total = activations.reduce((a, b) => a + b, 0);
  const chosen: number[] = [];
  let covered = 0;
  for (const e of order) {
    chosen.push(e);
    covered += activations[e]!;
    // Compare with a small tolerance so 0.8 of 10 activations is met by exactly 8.
    if (covered >= rule.fraction * total - 1e-9) break;
  }
  return chosen;
}
