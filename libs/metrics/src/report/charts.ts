import type { ReportEpoch, ReportForget } from './types';

// vega-lite is an ES module: its types must be resolved as an import's would be, since this
// CommonJS lib reaches it with import() (see render.ts).
export type VegaLiteSpec = Parameters<
  (typeof import('vega-lite', { with: { 'resolution-mode': 'import' } }))['compile']
>[0];

/** A chart to draw: its file stem in the output directory, alt text and vega-lite spec. */
export interface ChartSpec {
  name: string;
  alt: string;
  spec: VegaLiteSpec;
}

// DejaVu Sans is the font the PNG renderer is given (see render.ts); browsers opening the SVGs
// fall back to their sans-serif.
const FONT = 'DejaVu Sans, sans-serif';
const BEFORE = '#9aa5b1';
const AFTER = '#1f6fb2';
const LOSS = '#c2410c';
const FORGOTTEN_FILL = '#fde2e1';
const FORGOTTEN_TEXT = '#b91c1c';
const FORGOTTEN_SUFFIX = ' (forgotten)';
const PHASES = ['before', 'after'];

const CONFIG = {
  font: FONT,
  background: 'white',
  view: { stroke: '#d4d4d4' },
  axis: { labelFontSize: 12, titleFontSize: 13, titleFontWeight: 'normal', labelColor: '#262626' },
  legend: { labelFontSize: 12, titleFontSize: 12, titleFontWeight: 'normal' },
  header: { labelFontSize: 13, titleFontSize: 13 },
  title: { fontSize: 16, subtitleFontSize: 12, anchor: 'start', subtitleColor: '#525252' },
} as const;

/** Class names as axis labels, the forgotten one marked in text too (not by colour alone). */
function classLabels(classes: readonly string[], forgotten: number): string[] {
  return classes.map((c, i) => (i === forgotten ? `${c}${FORGOTTEN_SUFFIX}` : c));
}

// Axis label test on the constant suffix, so no class name has to be quoted into an expression.
const forgottenLabel = {
  labelColor: {
    condition: { test: `indexof(datum.label, '${FORGOTTEN_SUFFIX}') >= 0`, value: FORGOTTEN_TEXT },
    value: '#262626',
  },
  labelFontWeight: {
    condition: { test: `indexof(datum.label, '${FORGOTTEN_SUFFIX}') >= 0`, value: 'bold' },
    value: 'normal',
  },
} as const;

/** Loss and accuracy per epoch, side by side (their scales have nothing in common). */
export function epochCurveSpec(
  title: string,
  subtitle: string,
  history: readonly ReportEpoch[],
  accuracyTitle: string,
): VegaLiteSpec {
  const values = history.flatMap((h) => [
    { epoch: h.epoch, metric: 'loss', value: h.loss },
    { epoch: h.epoch, metric: 'accuracy', value: h.accuracy },
  ]);
  const first = Math.min(...history.map((h) => h.epoch));
  const last = Math.max(...history.map((h) => h.epoch));
  // One epoch would collapse the x domain to a point.
  const domain = last > first ? [first, last] : [first - 0.5, first + 0.5];
  const labelled = history.length <= 12;
  const panel = (metric: string, axisTitle: string, colour: string, format: string) => ({
    width: 300,
    height: 220,
    // Titled on top rather than along the y axis: vega estimates rotated text length without
    // a font, and a long axis title padded the whole chart with blank space.
    title: { text: axisTitle, fontSize: 13, fontWeight: 'normal' as const },
    transform: [{ filter: { field: 'metric', equal: metric } }],
    encoding: {
      x: {
        field: 'epoch',
        type: 'quantitative' as const,
        title: 'epoch',
        // Padding keeps the first and last value labels clear of the axes.
        scale: { domain, nice: false, padding: 18 },
        axis: { tickMinStep: 1, format: 'd' },
      },
      y: {
        field: 'value',
        type: 'quantitative' as const,
        title: null,
        ...(metric === 'accuracy' ? { scale: { domain: [0, 100] } } : {}),
      },
    },
    layer: [
      {
        mark: {
          type: 'line' as const,
          point: { color: colour, filled: true, size: 40 },
          color: colour,
          strokeWidth: 2,
        },
      },
      ...(labelled
        ? [
            {
              mark: { type: 'text' as const, dy: -9, fontSize: 11, color: '#404040' },
              encoding: { text: { field: 'value', type: 'quantitative' as const, format } },
            },
          ]
        : []),
    ],
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle },
    config: CONFIG,
    data: { values },
    hconcat: [panel('loss', 'loss', LOSS, '.3f'), panel('accuracy', accuracyTitle, AFTER, '.1f')],
  };
}

/** Per-class test accuracy before vs after, one row per class so every name stays readable. */
export function perClassSpec(forget: ReportForget, classes: readonly string[]): VegaLiteSpec {
  const labels = classLabels(classes, forget.classIndex);
  const values = PHASES.flatMap((phase) =>
    labels.map((label, i) => ({
      class: label,
      phase,
      accuracy: (phase === 'before' ? forget.metrics.before : forget.metrics.after).perClassTest[i],
    })),
  );
  const rowHeight = labels.length > 30 ? 22 : 34;
  const y = {
    field: 'class',
    type: 'nominal' as const,
    sort: labels,
    title: null,
    axis: forgottenLabel,
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Per-class test accuracy: forgetting ${forget.className}`,
      subtitle: `request ${forget.requestId}; the forgotten class is highlighted`,
    },
    config: CONFIG,
    width: 540,
    height: labels.length * rowHeight,
    data: { values },
    layer: [
      {
        transform: [{ filter: { field: 'class', equal: labels[forget.classIndex] ?? '' } }],
        mark: { type: 'rect', color: FORGOTTEN_FILL },
        encoding: { y, x: { datum: 0 }, x2: { datum: 100 } },
      },
      {
        mark: { type: 'bar' },
        encoding: {
          y,
          yOffset: { field: 'phase', type: 'nominal', sort: PHASES },
          x: {
            field: 'accuracy',
            type: 'quantitative',
            title: 'test accuracy (%)',
            scale: { domain: [0, 100] },
          },
          color: {
            field: 'phase',
            type: 'nominal',
            scale: { domain: PHASES, range: [BEFORE, AFTER] },
            legend: { title: null, orient: 'top' },
          },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 3, fontSize: 10, color: '#404040' },
        encoding: {
          y,
          yOffset: { field: 'phase', type: 'nominal', sort: PHASES },
          x: { field: 'accuracy', type: 'quantitative' },
          text: { field: 'accuracy', type: 'quantitative', format: '.1f' },
        },
      },
    ],
  };
}

/** Routing counts per class turned into shares, so classes of different sizes compare. */
export function routingShares(counts: readonly (readonly number[])[]): number[][] {
  return counts.map((row) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((n) => (total > 0 ? n / total : 0));
  });
}

/** Class × expert routing shares before and after, as two heatmap facets. */
export function routingSpec(forget: ReportForget, classes: readonly string[]): VegaLiteSpec {
  const labels = classLabels(classes, forget.classIndex);
  const experts = Math.max(
    0,
    ...[forget.metrics.before, forget.metrics.after].flatMap((m) =>
      m.routingTest.map((r) => r.length),
    ),
  );
  const retrained = new Set(forget.expertsRetrained);
  const expertLabels = Array.from({ length: experts }, (_, e) =>
    retrained.has(e) ? `e${e}*` : `e${e}`,
  );
  const values = PHASES.flatMap((phase) => {
    const routing = (phase === 'before' ? forget.metrics.before : forget.metrics.after).routingTest;
    return routingShares(routing).flatMap((row, c) =>
      row.map((share, e) => ({
        phase,
        class: labels[c] ?? `class ${c}`,
        expert: expertLabels[e]!,
        share,
        count: routing[c]![e]!,
      })),
    );
  });
  const cell = Math.max(14, Math.min(56, Math.floor(300 / Math.max(1, experts))));
  const rowHeight = labels.length > 30 ? 18 : 26;
  const x = {
    field: 'expert',
    type: 'ordinal' as const,
    sort: expertLabels,
    title: 'expert (* retrained)',
    // Labels like "e12*" no longer fit side by side in narrow cells.
    axis: { labelAngle: cell >= 32 ? 0 : -90 },
  };
  const y = {
    field: 'class',
    type: 'ordinal' as const,
    sort: labels,
    title: null,
    axis: forgottenLabel,
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Routing on the test set: forgetting ${forget.className}`,
      subtitle: `request ${forget.requestId}; share of each class's top-k routing choices per expert`,
    },
    config: CONFIG,
    data: { values },
    facet: {
      column: {
        field: 'phase',
        type: 'nominal',
        sort: PHASES,
        title: null,
        header: { labelFontSize: 14, labelFontWeight: 'bold' },
      },
    },
    spec: {
      width: cell * experts,
      height: labels.length * rowHeight,
      layer: [
        {
          mark: { type: 'rect' },
          encoding: {
            x,
            y,
            color: {
              field: 'share',
              type: 'quantitative',
              scale: { domain: [0, 1], scheme: 'blues' },
              legend: { title: 'share', format: '.0%' },
            },
            tooltip: [{ field: 'count', type: 'quantitative' }],
          },
        },
        ...(cell >= 30
          ? [
              {
                mark: { type: 'text' as const, fontSize: 11 },
                encoding: {
                  x,
                  y,
                  text: { field: 'share', type: 'quantitative' as const, format: '.0%' },
                  color: {
                    condition: { test: 'datum.share > 0.55', value: 'white' },
                    value: '#262626',
                  },
                },
              },
            ]
          : []),
      ],
    },
  };
}
