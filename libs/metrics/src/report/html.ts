import { DEAD_EXPERT_SHARE, type RoutingHealth } from '../routing-health';
import type { ReportErasure, ReportForget, ReportForgetMetrics, ReportInput } from './types';

/** A chart as report.html links it: a path relative to the report. */
export interface ChartLink {
  file: string;
  alt: string;
  width: number;
}

export interface ForgetCharts {
  perClass: ChartLink;
  routing: ChartLink;
  unlearning: ChartLink | undefined;
}

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

const pct = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(2);
const secs = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? '—' : `${n.toFixed(1)} s`;
/** 12 hex digits identify an object among a store's few thousand as well as 64 do. */
const shortHash = (hash: string | undefined): string => (hash ? hash.slice(0, 12) : '—');

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1f2937;
  max-width: 960px; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid #e5e7eb; padding-bottom: 0.3rem; }
.meta { color: #6b7280; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #e5e7eb; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f9fafb; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.88em; }
.forgotten { color: #b91c1c; font-weight: 600; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #f3f4f6; }
`;

function row(cells: string[], header = false): string {
  const tag = header ? 'th' : 'td';
  return `<tr>${cells.map((c) => `<${tag}>${c}</${tag}>`).join('')}</tr>`;
}

function keyValueTable(rows: [string, string][]): string {
  return `<table>${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function figure(chart: ChartLink): string {
  return `<figure><img src="${escapeHtml(chart.file)}" alt="${escapeHtml(chart.alt)}" width="${Math.round(chart.width)}"></figure>`;
}

function metricsTable(forget: ReportForget): string {
  const line = (name: string, m: ReportForgetMetrics): string =>
    `<tr><th>${name}</th>${[
      m.ua,
      m.ra,
      m.ta,
      m.forgottenClassTestAccuracy,
      m.miaEfficacy,
      m.featureProbe,
    ]
      .map((n) => `<td class="num">${pct(n)}</td>`)
      .join('')}</tr>`;
  return (
    '<table>' +
    row(
      [
        '',
        'UA',
        'RA',
        'TA',
        `${escapeHtml(forget.className)} test acc`,
        'MIA-Efficacy',
        'feature probe',
      ],
      true,
    ) +
    line('before', forget.metrics.before) +
    line('after', forget.metrics.after) +
    '</table>'
  );
}

function weightsTable(forget: ReportForget): string {
  const parts = [
    ...new Set([...Object.keys(forget.weights.before), ...Object.keys(forget.weights.after)]),
  ];
  const rows = parts.map((part) => {
    const before = forget.weights.before[part];
    const after = forget.weights.after[part];
    const changed = before !== after;
    return row([
      `<code>${escapeHtml(part)}</code>`,
      `<code>${escapeHtml(shortHash(before))}</code>`,
      `<code>${escapeHtml(shortHash(after))}</code>`,
      changed ? 'changed' : 'unchanged',
    ]);
  });
  return `<table>${row(['part', 'weights before', 'weights after', ''], true)}${rows.join('')}</table>`;
}

/** Expert load and, per class, what a forget of it would retrain and disturb. */
function routingHealthSection(h: RoutingHealth, classes: readonly string[]): string[] {
  const dead = h.deadExperts.length
    ? `<p class="meta"><strong>Dead experts:</strong> ${escapeHtml(h.deadExperts.map((e) => `e${e}`).join(', '))} (below ${DEAD_EXPERT_SHARE * 100}% of their fair share).</p>`
    : '';
  const load = `<table>${row(['expert', ...h.utilisation.map((_, e) => `e${e}`)], true)}${row(['load × fair share', ...h.utilisation.map((u) => u.toFixed(2))])}</table>`;
  const perClass = `<table>${row(['class', 'concentration', 'a forget retrains', "collateral (other classes' share)"], true)}${classes
    .map((name, c) =>
      row([
        escapeHtml(name),
        `${pct(h.concentration[c] ?? 0)} %`,
        escapeHtml((h.plannedExperts[c] ?? []).map((e) => `e${e}`).join(', ')),
        `${pct(h.collateral[c] ?? 0)} %`,
      ]),
    )
    .join('')}</table>`;
  return [
    '<h2>Routing health</h2>',
    `<p class="meta">On the test split. Mean collateral ${pct(h.meanCollateral)} %, mean concentration ${pct(h.meanConcentration)} % (share of a class's routing on its top-k experts); plans by ${escapeHtml(h.rule)}. Collateral is the cost and the risk of forgetting a class: the share of the other classes' routing on the experts its forget retrains.</p>`,
    load,
    dead,
    perClass,
  ];
}

function forgetSection(forget: ReportForget, charts: ForgetCharts): string {
  const t = forget.timings;
  const details: [string, string][] = [
    ['created', escapeHtml(forget.createdAt)],
    [
      'method',
      escapeHtml(
        `${forget.method} (${forget.mode})${forget.loss ? `, unlearning loss ${forget.loss}` : ''}`,
      ),
    ],
    [
      'experts retrained',
      escapeHtml(forget.expertsRetrained.map((e) => `e${e}`).join(', ') || 'none'),
    ],
    ['parts changed', escapeHtml(forget.partsChanged.join(', ') || 'none')],
    [
      'timings',
      escapeHtml(
        `plan ${secs(t.planSeconds)}, forget ${secs(t.forgetSeconds)}, measure ${secs(t.measureSeconds)}, total ${secs(t.totalSeconds)}`,
      ),
    ],
  ];
  if (forget.engine) details.push(['engine', escapeHtml(forget.engine)]);
  return [
    `<section id="forget-${escapeHtml(forget.requestId)}">`,
    `<h2>Forget <span class="forgotten">${escapeHtml(forget.className)}</span> — request <code>${escapeHtml(forget.requestId)}</code></h2>`,
    metricsTable(forget),
    "<p class=\"meta\">Percentages. UA: 100 − accuracy on the class's training samples; RA: accuracy on the retained training samples; TA: test accuracy on the other classes; MIA-Efficacy: share of the class's training samples a membership attack calls non-members; feature probe: share of the class's test samples a linear probe on internal features still recognises.</p>",
    keyValueTable(details),
    weightsTable(forget),
    figure(charts.perClass),
    figure(charts.routing),
    charts.unlearning
      ? figure(charts.unlearning)
      : '<p class="meta">No retraining epochs (this method does not retrain).</p>',
    '</section>',
  ].join('\n');
}

/** Every sample and subject erasure in one table: what was asked, retrained and measured. */
function erasuresSection(erasures: readonly ReportErasure[]): string[] {
  const moved = (e: ReportErasure, metric: 'ua' | 'ra' | 'ta' | 'miaEfficacy'): string =>
    e.metrics ? `${pct(e.metrics.before[metric])} → ${pct(e.metrics.after[metric])}` : '—';
  const rows = erasures.map((e) =>
    row([
      `<code>${escapeHtml(e.requestId)}</code>`,
      escapeHtml(e.createdAt),
      escapeHtml(`${e.method} (${e.mode})`),
      `${e.samples}${e.subjects.length ? ` (${e.subjects.length === 1 ? 'subject' : 'subjects'} ${escapeHtml(e.subjects.join(', '))})` : ''}`,
      escapeHtml(e.retrained),
      moved(e, 'ua'),
      moved(e, 'ra'),
      moved(e, 'ta'),
      moved(e, 'miaEfficacy'),
      secs(e.totalSeconds),
    ]),
  );
  return [
    '<h2>Sample and subject erasures</h2>',
    `<table>${row(['request', 'created', 'method', 'samples', 'retrained', 'UA', 'RA', 'TA', 'MIA-Efficacy', 'time'], true)}${rows.join('')}</table>`,
    '<p class="meta">Percentages, before → after. UA: 100 − accuracy on the forgotten samples; RA: accuracy on retained training samples; TA: test accuracy; MIA-Efficacy: share of the forgotten samples a membership attack calls non-members. An approximate erasure is read against a model retrained without the samples (its UA and MIA-Efficacy are those of unseen data, not 100); an exact one replays every shard that held a sample from a checkpoint before it, so it needs no such evidence.</p>',
  ];
}

export function reportHtml(
  input: ReportInput,
  generatedAt: string,
  training: ChartLink | undefined,
  forgets: ForgetCharts[],
): string {
  const m = input.model;
  const card: [string, string][] = [
    ['preset', escapeHtml(m.preset)],
    ['experts', String(m.experts)],
    ['top-k', String(m.topK)],
    ['classes', `${m.classes.length}: ${escapeHtml(m.classes.join(', '))}`],
  ];
  if (m.engine) card.push(['engine', escapeHtml(m.engine)]);
  if (m.manifestRevision !== undefined)
    card.push(['manifest revision', String(m.manifestRevision)]);
  if (m.forgotten?.length) card.push(['forgotten classes', escapeHtml(m.forgotten.join(', '))]);
  if (m.suppressClasses?.length) {
    card.push([
      'suppressed outputs',
      escapeHtml(m.suppressClasses.map((c) => m.classes[c] ?? String(c)).join(', ')),
    ]);
  }
  const tr = input.training;
  const trainingRows: [string, string][] = [];
  if (tr?.dataset) trainingRows.push(['dataset', escapeHtml(tr.dataset)]);
  if (tr?.trainSize !== undefined) trainingRows.push(['training images', String(tr.trainSize)]);
  if (tr?.epochs !== undefined) trainingRows.push(['epochs', String(tr.epochs)]);
  if (tr?.batchSize !== undefined) trainingRows.push(['batch size', String(tr.batchSize)]);
  if (tr?.learningRate !== undefined) trainingRows.push(['learning rate', String(tr.learningRate)]);
  if (tr?.testAccuracy !== undefined)
    trainingRows.push(['test accuracy', `${pct(tr.testAccuracy)} %`]);
  if (tr?.seconds !== undefined) trainingRows.push(['training time', secs(tr.seconds)]);

  const body = [
    `<h1>${escapeHtml(input.title)}</h1>`,
    `<p class="meta">${input.source ? `${escapeHtml(input.source)} · ` : ''}generated ${escapeHtml(generatedAt)}</p>`,
    '<h2>Model</h2>',
    keyValueTable(card),
    '<h2>Training</h2>',
    trainingRows.length ? keyValueTable(trainingRows) : '',
    training ? figure(training) : '<p class="meta">No training history in the manifest.</p>',
    ...(tr?.routingHealth ? routingHealthSection(tr.routingHealth, m.classes) : []),
    ...(input.forgets.length
      ? input.forgets.map((f, i) => forgetSection(f, forgets[i]!))
      : input.erasures?.length
        ? []
        : ['<h2>Forget requests</h2>', '<p>No forget requests yet.</p>']),
    ...(input.erasures?.length ? erasuresSection(input.erasures) : []),
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(input.title)}</title>
<style>${STYLE}</style>
</head>
<body>
${body.filter(Boolean).join('\n')}
</body>
</html>
`;
}
