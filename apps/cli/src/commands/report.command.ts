import type { Command } from 'commander';
import {
  type ReportEpoch,
  type ReportForget,
  type ReportInput,
  type ReportTraining,
  type RoutingHealth,
  writeReport,
} from '@lethe/metrics';
import { type ModelCard, readTrainingRecord, type TrainingRecord } from '@lethe/model';
import { LocalDirStore, ManifestStore } from '@lethe/store';
import { type ClassForgetReceipt, isClassReceipt, listReceipts } from '@lethe/ledger';
import { explicitCoordinator } from '../remote/target';
import { action, CliError } from '../terminal/errors';

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
        // The report's forget sections are per class; sample and sisa receipts are counted only.
        const receipts = await listReceipts(store);
        const classForgets = receipts.filter(isClassReceipt);
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
        };
        const written = await writeReport(input, flags.out);
        console.log(
          `wrote ${written.html} with ${written.charts.length} charts ` +
            `(${input.forgets.length} forget receipt${input.forgets.length === 1 ? '' : 's'})`,
        );
        const others = receipts.length - classForgets.length;
        if (others > 0) {
          console.log(
            `not in the report: ${others} sample or sisa forget receipt${others === 1 ? '' : 's'} (npx lethe receipts --store ${flags.store})`,
          );
        }
      }),
    );
}
