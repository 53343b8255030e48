import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MetricsError } from '../errors';
import { type ChartSpec, epochCurveSpec, perClassSpec, routingSpec } from './charts';
import { type ChartLink, type ForgetCharts, reportHtml } from './html';
import { renderChart } from './render';
import type { ReportForget, ReportInput, ReportOutput } from './types';

/** Temp file + rename: a crash leaves the previous file or the new one, never half of one. */
async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

function checkForget(forget: ReportForget, classes: number): void {
  const where = `receipt ${forget.requestId}`;
  if (!Number.isInteger(forget.classIndex) || forget.classIndex < 0 || forget.classIndex >= classes)
    throw new MetricsError(`${where}: class index ${forget.classIndex} is not one of ${classes}`);
  for (const phase of ['before', 'after'] as const) {
    const m = forget.metrics[phase];
    if (m.perClassTest.length !== classes) {
      throw new MetricsError(
        `${where}: ${phase} has ${m.perClassTest.length} per-class accuracies for ${classes} classes`,
      );
    }
    if (m.routingTest.length !== classes) {
      throw new MetricsError(
        `${where}: ${phase} routing has ${m.routingTest.length} rows for ${classes} classes`,
      );
    }
  }
}

/** A file stem from a request id; ids are already safe, but the input is only plain data. */
function stem(requestId: string, taken: Set<string>): string {
  const base = `forget-${requestId.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  taken.add(name);
  return name;
}

/**
 * Writes `report.html` and one PNG (and SVG) per chart into `outDir`. Charts are written before
 * the page, so a report.html on disk never links an image that is not there yet.
 */
export async function writeReport(input: ReportInput, outDir: string): Promise<ReportOutput> {
  const classes = input.model.classes.length;
  if (classes === 0) throw new MetricsError('the model card names no classes');
  input.forgets.forEach((f) => checkForget(f, classes));
  await mkdir(outDir, { recursive: true });
  const charts: string[] = [];

  const draw = async (chart: ChartSpec): Promise<ChartLink> => {
    const rendered = await renderChart(chart.spec);
    const png = join(outDir, `${chart.name}.png`);
    await writeAtomic(join(outDir, `${chart.name}.svg`), rendered.svg);
    await writeAtomic(png, rendered.png);
    charts.push(png);
    return { file: `${chart.name}.png`, alt: chart.alt, width: rendered.width };
  };

  const history = input.training?.history ?? [];
  const training = history.length
    ? await draw({
        name: 'training-curve',
        alt: 'Training loss and accuracy per epoch',
        spec: epochCurveSpec(
          'Training',
          `${input.model.preset} MoE, ${input.model.experts} experts, top-${input.model.topK}`,
          history,
          'training accuracy (%)',
        ),
      })
    : undefined;

  const taken = new Set<string>();
  const forgetCharts: ForgetCharts[] = [];
  for (const forget of input.forgets) {
    const name = stem(forget.requestId, taken);
    forgetCharts.push({
      perClass: await draw({
        name: `${name}-per-class`,
        alt: `Per-class test accuracy before and after forgetting ${forget.className}`,
        spec: perClassSpec(forget, input.model.classes),
      }),
      routing: await draw({
        name: `${name}-routing`,
        alt: `Class by expert routing shares before and after forgetting ${forget.className}`,
        spec: routingSpec(forget, input.model.classes),
      }),
      unlearning: forget.history.length
        ? await draw({
            name: `${name}-unlearning-curve`,
            alt: `Retraining loss and accuracy per epoch while forgetting ${forget.className}`,
            spec: epochCurveSpec(
              `Unlearning: forgetting ${forget.className}`,
              `request ${forget.requestId}; retrained ${
                forget.partsChanged.join(', ') || 'nothing'
              }`,
              forget.history,
              'accuracy on retraining batches (%)',
            ),
          })
        : undefined,
    });
  }

  const html = join(outDir, 'report.html');
  await writeAtomic(
    html,
    reportHtml(input, input.generatedAt ?? new Date().toISOString(), training, forgetCharts),
  );
  return { html, charts };
}
