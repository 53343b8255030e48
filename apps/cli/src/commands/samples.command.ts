import type { Command } from 'commander';
import type { ListSamplesRequest } from '@lethe/proto';
import { loadSisa } from '@lethe/sisa';
import { LocalDirStore } from '@lethe/store';
import { callUnary, withCoordinator } from '../remote/grpc';
import {
  type ConnectionFlags,
  type CoordinatorTarget,
  explicitCoordinator,
  ignoredWithCoordinator,
  withConnectionOptions,
} from '../remote/target';
import { currentSamples } from '../jobs/subject-samples';
import { action, CliError } from '../terminal/errors';
import { nonNegativeInt } from '../terminal/option-parsers';
import { table } from '../terminal/tables';
import { counted } from '../terminal/wording';

interface SamplesFlags extends ConnectionFlags {
  store: string;
  subject?: string;
  class?: string;
  shard?: number;
  json: boolean;
  coordinator?: string;
}

/** One listed sample, the same whether read from a store or from a coordinator. */
interface SampleRow {
  sampleId: string;
  class: string;
  /** null when the subject table gives the sample none (as the store records it). */
  subject: string | null;
  slice?: number;
}

export function registerSamplesCommand(program: Command): void {
  const registered = program
    .command('samples')
    .description(
      'list the training sample ids (and subjects) of the stored model, without those the erasure ledger holds; on a coordinator with --coordinator',
    )
    .option('--subject <id>', 'the samples of one data subject')
    .option('--class <name>', 'the samples of one class')
    .option('--shard <N>', 'the samples of one shard (sisa models)', nonNegativeInt)
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--json', 'print JSON on stdout', false)
    .option(
      '--coordinator <host:port>',
      "list the coordinator's current model instead (ListSamples; or set LETHE_COORDINATOR)",
    )
    .action(
      action(async (flags: SamplesFlags, command: Command) => {
        const given = [flags.subject, flags.class, flags.shard].filter((v) => v !== undefined);
        if (given.length !== 1) throw new CliError('give one of --subject, --class or --shard');
        const remote = explicitCoordinator(flags.coordinator, flags);
        if (remote) ignoredWithCoordinator(command, ['store']);
        const rows = remote ? await remoteSamples(remote, flags) : await localSamples(flags);
        printSamples(rows, flags.shard !== undefined, flags.json);
      }),
    );
  withConnectionOptions(registered);
}

async function localSamples(flags: SamplesFlags): Promise<SampleRow[]> {
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
  return samples.map((s) => ({
    sampleId: s.sampleId,
    class: s.className,
    subject: s.subject,
    ...(flags.shard !== undefined ? { slice: shardOf.get(s.index)! } : {}),
  }));
}

/** The same listing from the coordinator's current model (the ListSamples RPC). */
async function remoteSamples(target: CoordinatorTarget, flags: SamplesFlags): Promise<SampleRow[]> {
  const selector: ListSamplesRequest['selector'] =
    flags.shard !== undefined
      ? { $case: 'shard', value: flags.shard }
      : flags.class !== undefined
        ? { $case: 'className', value: flags.class }
        : { $case: 'subject', value: flags.subject! };
  const response = await withCoordinator(target, (client) =>
    callUnary(client, client.listSamples, { selector }),
  );
  return response.samples.map((s) => ({
    sampleId: s.sampleId,
    class: s.className,
    // The API sends "" for a sample the subject table gives no subject.
    subject: s.subject === '' ? null : s.subject,
    ...(s.slice !== undefined ? { slice: s.slice } : {}),
  }));
}

function printSamples(rows: SampleRow[], bySlice: boolean, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  if (rows.length === 0) {
    console.log('no samples');
    return;
  }
  const header = ['sample', 'class', 'subject', ...(bySlice ? ['slice'] : [])];
  console.log(
    table([
      header,
      ...rows.map((r) => [
        r.sampleId,
        r.class,
        r.subject ?? '—',
        ...(bySlice ? [String(r.slice ?? '—')] : []),
      ]),
    ]),
  );
  console.log(counted(rows.length, 'sample'));
}
