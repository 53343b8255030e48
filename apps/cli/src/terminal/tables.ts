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
