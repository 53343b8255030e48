import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHART_DIR, REPO_DIR, validateKubernetesObject } from '../src/checks';
import { renderChart } from '../src/helm-chart';

// The dashboard ships inside the chart (the ConfigMap template reads it with .Files.Get) and
// may only query metrics the coordinator and the workers export, so that no panel stays empty.

const DASHBOARD = join(CHART_DIR, 'dashboards', 'lethe.json');

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: Panel[] };
const panels = (list: Panel[]): Panel[] => list.flatMap((p) => [p, ...panels(p.panels ?? [])]);
const queries = panels(dashboard.panels).flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
);

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
]);

/** The metric names a PromQL expression reads: identifiers that are not functions or keywords. */
function metricsOf(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values
    .replace(/\{[^}]*\}/g, '') // label matchers
    // Label lists, keyword included: `sum by (le) (…)` leaves `sum (…)`, a function call.
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ''); // ranges, $__rate_interval included
  const names = [...bare.matchAll(/\b[A-Za-z_:][A-Za-z0-9_:]*\b(?!\s*\()/g)]
    .map((m) => m[0])
    .filter((name) => !PROMQL_WORDS.has(name) && !/^\d/.test(name));
  return [...new Set(names)];
}

/** Every series name the services export: counters and gauges as named, histograms' 3 series. */
function exportedMetrics(): Set<string> {
  const sources = ['apps/coordinator/src', 'apps/worker/src'].flatMap((dir) =>
    (readdirSync(join(REPO_DIR, dir), { recursive: true }) as string[])
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
      .map((file) => readFileSync(join(REPO_DIR, dir, file), 'utf8')),
  );
  const exported = new Set<string>();
  for (const source of sources) {
    for (const [, kind, name] of source.matchAll(
      /new (Counter|Gauge|Histogram|Summary)\(\{\s*name: '([a-z_:][a-z0-9_:]*)'/g,
    )) {
      if (kind === 'Histogram' || kind === 'Summary') {
        for (const suffix of ['_bucket', '_sum', '_count']) exported.add(name! + suffix);
      } else exported.add(name!);
    }
  }
  return exported;
}

describe('Grafana dashboard deploy/helm/lethe/dashboards/lethe.json', () => {
  it('reads series names out of PromQL', () => {
    expect(
      metricsOf(
        'sum(rate(a_sum{kind="x{y}"}[5m])) / sum by (le, method) (rate(b_bucket[$__rate_interval]))',
      ),
    ).toEqual(['a_sum', 'b_bucket']);
    expect(metricsOf('histogram_quantile(0.95, sum by (le) (rate(c_bucket[1m])))')).toEqual([
      'c_bucket',
    ]);
  });

  it('queries only metrics the coordinator and the workers export', () => {
    const exported = exportedMetrics();
    expect(exported.size).toBeGreaterThan(10);
    const unknown = queries.flatMap(({ panel, expr }) =>
      metricsOf(expr)
        .filter((name) => !exported.has(name))
        .map((name) => `${panel}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('covers jobs, forget requests and their latency, worker health, step time, its RPC share and routing health', () => {
    const used = new Set(queries.flatMap(({ expr }) => metricsOf(expr)));
    for (const metric of [
      'lethe_jobs_total',
      'lethe_forget_queue_length',
      'lethe_forget_request_seconds_bucket',
      'lethe_workers',
      'lethe_step_seconds_bucket',
      'lethe_step_rpc_seconds_sum',
      'lethe_step_seconds_sum',
      'lethe_worker_rpc_seconds_bucket',
      'lethe_routing_collateral_ratio',
    ]) {
      expect(used, metric).toContain(metric);
    }
    expect(queries.some(({ expr }) => /kind="forget"/.test(expr))).toBe(true);
  });

  it('is installed by the chart as a ConfigMap for the Grafana sidecar when enabled', () => {
    const off = renderChart(CHART_DIR, { releaseName: 'lethe', namespace: 'ml' });
    expect(off.manifests.filter((m) => m.kind === 'ConfigMap')).toEqual([]);

    const on = renderChart(CHART_DIR, {
      releaseName: 'lethe',
      namespace: 'ml',
      values: {
        metrics: { enabled: true },
        grafana: { dashboard: { enabled: true, annotations: { grafana_folder: 'Lethe' } } },
      },
    });
    const maps = on.manifests.filter((m) => m.kind === 'ConfigMap');
    expect(maps).toHaveLength(1);
    const { source: _source, ...configMap } = maps[0]!;
    validateKubernetesObject(configMap);
    expect(configMap.metadata.name).toBe('lethe-grafana-dashboard');
    expect(configMap.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(configMap.metadata.annotations).toEqual({ grafana_folder: 'Lethe' });
    const data = configMap['data'] as Record<string, string>;
    expect(JSON.parse(data['lethe.json']!)).toEqual(dashboard);

    // With metrics on, both components serve them on the port the chart declares.
    const args = on.manifests
      .filter((m) => m.kind === 'Deployment' || m.kind === 'StatefulSet')
      .map((m) => JSON.stringify(m));
    expect(args).toHaveLength(2);
    for (const workload of args) expect(workload).toContain('--metrics-port=9464');
  });
});
