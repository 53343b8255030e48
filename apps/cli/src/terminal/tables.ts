/** Renders rows as a left-aligned text table (first row is the header). */
export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]): string =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [
    line(cells[0]!),
    widths.map((w) => '─'.repeat(w)).join('  '),
    ...cells.slice(1).map(line),
  ].join('\n');
}

export function percent(fraction: number, digits = 1): string {
  return Number.isNaN(fraction) ? '—' : `${(fraction * 100).toFixed(digits)}%`;
}

/**
 * Columns of a forget receipt's before/after table; "unmasked" ones read the raw outputs before
 * any serving-time mask (docs/metrics.md).
 */
/** One line per metric of a forget receipt, for readers who have not met them (the demos). */
export const FORGET_METRICS_LEGEND = [
  'UA  unlearning accuracy: 100 − accuracy on the forgotten training samples (higher: more forgotten)',
  'RA  remaining accuracy: accuracy on the retained training samples (should stay high)',
  'TA  test accuracy on the classes kept (should stay high)',
  'MIA-Efficacy: share of forgotten samples a membership attack no longer recognises as trained on',
].join('\n');

/** `TA 88.40% → 90.00%, "cat" on test images 85.00% → 0.00%`: a receipt's change, as it says it. */
export function forgetSummary(
  className: string,
  before: { ta: number; forgottenClassTestAccuracy?: number | undefined },
  after: { ta: number; forgottenClassTestAccuracy?: number | undefined },
): string {
  const pct = (n: number | undefined): string =>
    n === undefined || Number.isNaN(n) ? '—' : `${n.toFixed(2)}%`;
  return (
    `TA (kept classes) ${pct(before.ta)} → ${pct(after.ta)}, ` +
    `"${className}" test accuracy ${pct(before.forgottenClassTestAccuracy)} → ${pct(after.forgottenClassTestAccuracy)}`
  );
}

export const FORGET_METRICS_HEADER = [
  '',
  'UA',
  'RA',
  'TA',
  'forgotten-class test acc',
  'MIA-Efficacy',
  'feature probe',
  'unmasked: UA',
  'forgotten-class test acc',
  'MIA-Efficacy',
];
