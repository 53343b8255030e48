import { resolve } from 'node:path';
import { batches, openDataset } from '@lethe/data';
import { initEngine } from '@lethe/engine';
import {
  deserializeParameters,
  evaluate,
  loadModel,
  MoEModel,
  readTrainingRecord,
  serializeParameters,
} from '@lethe/model';
import { evaluateVote } from '@lethe/sisa';
import { LocalDirStore } from '@lethe/store';
import { Command } from 'commander';
import { machine, today, writeSection } from './benchmarks-md';

// How a trained sisa model's shard models are best combined: its router mixing k of them (k as
// trained and other k with the same router) against SISA's vote, on the same stored shards.
const program = new Command()
  .requiredOption('--data <dir>', 'CIFAR-10 binary directory (the test split is scored)')
  .requiredOption('--store <dir>', 'a local store holding a sisa model (lethe train --mode sisa)')
  .option('--k <list>', 'experts mixed per image with the stored router', '2,3,4,8')
  .option('--section <name>', 'BENCHMARKS.md section to (re)write', 'sisa-aggregation')
  .option('--print', 'print the section on stdout instead of writing BENCHMARKS.md')
  .parse();
const o = program.opts<{
  data: string;
  store: string;
  k: string;
  section: string;
  print?: boolean;
}>();

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

async function main(): Promise<void> {
  const engine = await initEngine({ log: () => undefined });
  const store = new LocalDirStore(resolve(o.store));
  const test = await openDataset(`cifar10:${resolve(o.data)}`, 'test');
  const { model, card, manifest } = await loadModel(store);
  const training = readTrainingRecord(manifest);
  if (training?.mode !== 'sisa' || !training.sisa) throw new Error(`${o.store}: not a sisa model`);
  const { experts, topK } = card.config;
  const accuracy = (m: MoEModel): number =>
    evaluate(m, batches(test, { batchSize: 256, shuffle: false, normalise: card.normalisation }))
      .accuracy;
  const rows: string[] = [];
  try {
    rows.push(`| router, k=${topK} (as trained) | ${pct(accuracy(model))} | ${test.size} |`);
    for (const k of o.k.split(',').map(Number)) {
      if (k === topK || k < 1 || k > experts) continue;
      const mixed = new MoEModel({ ...card.config, topK: k });
      try {
        for (const part of MoEModel.parts(experts)) {
          deserializeParameters(
            mixed.part(part).params,
            serializeParameters(model.part(part).params),
          );
        }
        rows.push(
          `| router trained at k=${topK}, k=${k} at inference | ${pct(accuracy(mixed))} | ${test.size} |`,
        );
      } finally {
        mixed.dispose();
      }
    }
  } finally {
    model.dispose();
  }
  const uniform = await evaluateVote(store, test);
  rows.push(
    `| vote, uniform mean of the shard models' softmax | ${pct(uniform.accuracy)} | ${uniform.count} |`,
  );
  const weighted = await evaluateVote(store, test, { weighted: true });
  rows.push(
    `| vote, weighted by accuracy on a held-out ${weighted.heldOut} test images | ${pct(weighted.accuracy)} | ${weighted.count} (the rest) |`,
  );
  const s = training.sisa;
  const section = [
    "## Combining a sisa model's shard models (`npm run bench:sisa-aggregation`)",
    '',
    `${today()} · ${machine()} · engine **${engine.engine}**`,
    '',
    `Command: \`npm run bench:sisa-aggregation -- ${process.argv.slice(2).join(' ')}\`. The stored sisa model: ${training.limit ? `a seeded ${training.limit}-image subset of the training images` : 'all training images'} of ${training.dataset}, the \`${card.config.preset}\` preset, E=${experts} shards, R=${s.slices} slices (${s.assignment}), ${s.epochsPerSlice} epochs per slice prefix, router ${s.routerEpochs} epoch(s) on ${(s.routerFraction * 100).toFixed(0)}% of the samples, trained at k=${topK}. Test accuracy on the CIFAR-10 test split of each way to combine the same shard models:`,
    '',
    '| combination | test accuracy | images scored |',
    '|---|---|---|',
    ...rows,
  ].join('\n');
  if (o.print) process.stdout.write(`${section}\n`);
  else writeSection(o.section, section);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
