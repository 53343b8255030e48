import type { Command } from 'commander';
import {
  type ReportEpoch,
  type ReportErasure,
  type ReportForget,
  type ReportInput,
  type ReportTraining,
  type RoutingHealth,
  writeReport,
} from '@lethe/metrics';
import { type ModelCard, readTrainingRecord, type TrainingRecord } from '@lethe/model';
import { LocalDirStore, ManifestStore } from '@lethe/store';
import {
  type ClassForgetReceipt,
  isClassReceipt,
  isSampleForgetReceipt,
  isSisaReceipt,
  listReceipts,
  type StoredReceipt,
} from '@lethe/ledger';
import { explicitCoordinator } from '../remote/target';
import { action, CliError } from '../terminal/errors';
import { counted } from '../terminal/wording';

interface StoredForgotten {
  className: string;
}

// Stored epochs count from 0 and accuracies are fractions; the report, like every @lethe/metrics
// number, shows 1-based epochs and percentages.
const epochs = (history: TrainingRecord['history']): ReportEpoch[] =>
  (history ?? []).map((h) => ({
    epoch: h.epoch + 1,
    loss: h.loss,
    accuracy: h.accuracy * 100,
    seconds: h.seconds ?? 0,
  }));

function forgetOf(r: ClassForgetReceipt): ReportForget {
  return {
    requestId: r.requestId,
    createdAt: r.createdAt,
    classIndex: r.request.classIndex,
    className: r.request.className,
    method: r.request.method,
    mode: r.mode,
    ...(r.request.method === 'targeted' ? { loss: r.request.loss } : {}),
    expertsRetrained: r.expertsRetrained,
    partsChanged: r.partsChanged,
    weights: r.weights,
    metrics: r.metrics,
    timings: r.timings,
    history: epochs(r.history),
    engine: r.engine,
  };
}

/** A sample or subject erasure's row: a joint model's approximate forget or a sisa replay. */
function erasureOf(r: StoredReceipt): ReportErasure | undefined {
  if (isSampleForgetReceipt(r)) {
    const pick = (m: typeof r.metrics.before) => ({
      ua: m.ua,
      ra: m.ra,
      ta: m.ta,
      miaEfficacy: m.miaEfficacy,
    });
    return {
      requestId: r.requestId,
      createdAt: r.createdAt,
      mode: r.mode,
      method: r.request.method,
      samples: r.request.sampleIds.length,
      subjects: r.request.subjects,
      retrained: `${r.expertsRetrained.map((e) => `e${e}`).join(', ') || 'no expert'} + router`,
      metrics: { before: pick(r.metrics.before), after: pick(r.metrics.after) },
      totalSeconds: r.timings.totalSeconds,
    };
  }
  if (isSisaReceipt(r)) {
    const replayed = r.sisa.shards.filter((s) => s.slicesReplayed.length > 0);
    return {
      requestId: r.requestId,
      createdAt: r.createdAt,
      mode: r.mode,
      method: 'sisa replay',
      samples: r.request.sampleIds.length,
      subjects: r.request.subjects ?? [],
      retrained: `shards ${replayed.map((s) => s.shard).join(', ') || 'none'} + router${r.batch && r.batch.requestIds.length > 1 ? ` (one replay for ${r.batch.requestIds.length} requests)` : ''}`,
      totalSeconds: r.timings.totalSeconds,
    };
  }
  return undefined;
}

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description(
      'write report.html and PNG charts of the stored model: its training and every forget receipt',
    )
    .option('--store <dir>', 'local store directory', '.lethe/store')
    // Beside the store and the cluster file, not in the working tree.
    .option('--out <dir>', 'output directory', '.lethe/report')
    .option(
      '--coordinator <host:port>',
      'refused: the Coordinator API does not return what the report shows (see the README)',
    )
    .action(
      action(async (flags: { store: string; out: string; coordinator?: string }) => {
        const remote = explicitCoordinator(flags.coordinator);
        // ListReceipts would give the forget sections, but a report without the model and its
        // training would pass for the whole story; refuse rather than write half of it.
        if (remote) {
          throw new CliError(
            `report over ${remote.source} is not supported: the Coordinator API returns receipts but not the model card and training record the report starts with (preset, top-k, training history, routing health); run npx lethe report --store on the coordinator's store`,
          );
        }
        const store = new LocalDirStore(flags.store);
        const manifest = await new ManifestStore(store).read();
        // A class forget gets a section with charts; sample and subject erasures a table row.
        const receipts = await listReceipts(store);
        const classForgets = receipts.filter(isClassReceipt);
        const erasures = receipts.flatMap((r) => erasureOf(r) ?? []);
        const card = manifest?.attributes['model'] as unknown as ModelCard | undefined;
        if (!manifest || !card) throw new CliError(`no trained model in ${store.describe()}`);
        const stored = readTrainingRecord(manifest);
        const forgotten = (manifest.attributes['forgotten'] ?? []) as unknown as StoredForgotten[];
        const training: ReportTraining | undefined = stored && {
          history: epochs(stored.history),
          ...(stored.dataset !== undefined ? { dataset: stored.dataset } : {}),
          ...(stored.trainSize !== undefined ? { trainSize: stored.trainSize } : {}),
          ...(stored.epochs !== undefined ? { epochs: stored.epochs } : {}),
          ...(stored.batchSize !== undefined ? { batchSize: stored.batchSize } : {}),
          ...(stored.learningRate !== undefined ? { learningRate: stored.learningRate } : {}),
          ...(typeof stored.testAccuracy === 'number'
            ? { testAccuracy: stored.testAccuracy * 100 }
            : {}),
          ...(stored.seconds !== undefined ? { seconds: stored.seconds } : {}),
          ...(stored.routingHealth
            ? { routingHealth: stored.routingHealth as unknown as RoutingHealth }
            : {}),
        };
        const input: ReportInput = {
          title: `Lethe report: ${card.config.preset} MoE on ${card.classes.length} classes`,
          source: store.describe(),
          model: {
            preset: card.config.preset,
            experts: card.config.experts,
            topK: card.config.topK,
            classes: card.classes,
            manifestRevision: manifest.revision,
            forgotten: forgotten.map((f) => f.className),
            ...(stored?.engine ? { engine: stored.engine } : {}),
            ...(card.suppressClasses ? { suppressClasses: card.suppressClasses } : {}),
          },
          ...(training ? { training } : {}),
          forgets: classForgets.map(forgetOf),
          erasures,
        };
        const written = await writeReport(input, flags.out);
        console.log(
          `wrote ${written.html} with ${written.charts.length} charts ` +
            `(${counted(classForgets.length, 'class forget')}, ${counted(erasures.length, 'sample or subject erasure')})`,
        );
      }),
    );
}
