import type { Command } from 'commander';
import { loadSisa } from '@lethe/sisa';
import { LocalDirStore } from '@lethe/store';
import { currentSamples } from '../jobs/subject-samples';
import { action, CliError } from '../terminal/errors';
import { nonNegativeInt } from '../terminal/option-parsers';
import { table } from '../terminal/tables';

interface SamplesFlags {
  store: string;
  subject?: string;
  class?: string;
  shard?: number;
  json: boolean;
}

export function registerSamplesCommand(program: Command): void {
  program
    .command('samples')
    .description(
      'list the training sample ids (and subjects) of the stored model, without those the erasure ledger holds',
    )
    .option('--subject <id>', 'the samples of one data subject')
    .option('--class <name>', 'the samples of one class')
    .option('--shard <N>', 'the samples of one shard (sisa models)', nonNegativeInt)
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--json', 'print JSON on stdout', false)
    .action(
      action(async (flags: SamplesFlags) => {
        const given = [flags.subject, flags.class, flags.shard].filter((v) => v !== undefined);
        if (given.length !== 1) throw new CliError('give one of --subject, --class or --shard');
        const store = new LocalDirStore(flags.store);
        let samples = await currentSamples(store);
        const shardOf = new Map<number, number>();
        if (flags.shard !== undefined) {
          const { layout } = await loadSisa(store).catch(() => {
            throw new CliError('--shard needs a sisa model (lethe train --mode sisa)');
          });
          if (flags.shard >= layout.shards) {
            throw new CliError(`not found: shard ${flags.shard} (the model has ${layout.shards})`);
          }
          layout.slots[flags.shard]!.forEach((slice, s) => slice.forEach((i) => shardOf.set(i, s)));
          samples = samples.filter((s) => shardOf.has(s.index));
        } else if (flags.class !== undefined) {
          samples = samples.filter((s) => s.className === flags.class);
        } else {
          samples = samples.filter((s) => s.subject === flags.subject);
        }
        const rows = samples.map((s) => ({
          sampleId: s.sampleId,
          class: s.className,
          subject: s.subject,
          ...(flags.shard !== undefined ? { slice: shardOf.get(s.index)! } : {}),
        }));
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return;
        }
        if (rows.length === 0) {
          console.log('no samples');
          return;
        }
        const header = [
          'sample',
          'class',
          'subject',
          ...(flags.shard !== undefined ? ['slice'] : []),
        ];
        console.log(
          table([
            header,
            ...rows.map((r) => [
              r.sampleId,
              r.class,
              r.subject ?? '—',
              ...('slice' in r ? [String(r.slice)] : []),
            ]),
          ]),
        );
        console.log(`${rows.length} samples`);
      }),
    );
}
