import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { dropErasure, erasedOf, type LedgerEvent, readLedger } from '@lethe/ledger';
import { LocalDirStore } from '@lethe/store';
import { action } from '../terminal/errors';
import { table } from '../terminal/tables';
import { counted } from '../terminal/wording';

interface LedgerFlags {
  store: string;
  json: boolean;
}

interface DropFlags {
  requestId: string;
  reason: string;
  by?: string;
}

export function registerLedgerCommand(program: Command): void {
  const ledger = program
    .command('ledger')
    .description(
      "the store's erasure ledger: every completed forget (classes, samples, subjects), which later trainings exclude",
    )
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--json', 'print the ledger document as JSON on stdout', false)
    .action(
      action(async (flags: LedgerFlags) => {
        const current = await readLedger(new LocalDirStore(flags.store));
        if (flags.json) {
          const document = { sha256: current.ref?.sha256 ?? null, ...current.document };
          process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
          return;
        }
        const events = current.document.events;
        if (events.length === 0) {
          console.log('the erasure ledger is empty');
          return;
        }
        const binding = erasedOf(current).byRequest;
        console.log(
          table([
            ['#', 'time', 'event', 'request', 'what', 'receipt / reason'],
            ...events.map((e) => row(e, binding.has(e.requestId))),
          ]),
        );
        console.log(
          `${binding.size} erasures binding, ${events.length} events; ledger ${current.ref!.sha256.slice(0, 12)}`,
        );
      }),
    );
  ledger
    .command('drop')
    .description(
      'operator action: an erasure stops binding later trainings; recorded in the ledger with who and why',
    )
    .requiredOption('--request-id <id>', 'the erasure (forget request) to drop')
    .requiredOption('--reason <text>', 'why, kept in the ledger')
    .option('--by <name>', 'who, kept in the ledger (default: the current user)')
    .action(
      action(async (flags: DropFlags, command: Command) => {
        // `--store` belongs to `lethe ledger`, which parses it wherever it is given.
        const { store } = command.optsWithGlobals<LedgerFlags>();
        const by = flags.by ?? userInfo().username;
        const { event, revision } = await dropErasure(new LocalDirStore(store), {
          requestId: flags.requestId,
          reason: flags.reason,
          by,
        });
        console.log(
          `dropped erasure ${event.requestId} (by ${event.by}: ${event.reason}); manifest revision ${revision}`,
        );
      }),
    );
}

function row(event: LedgerEvent, binding: boolean): string[] {
  if (event.kind === 'drop') {
    return [
      String(event.seq),
      event.at,
      'drop',
      event.requestId,
      '',
      `${event.by}: ${event.reason}`,
    ];
  }
  const what = [
    ...event.classes.map((c) => `class ${c}`),
    ...(event.subjects.length > 0 ? [`subjects ${event.subjects.join(', ')}`] : []),
    ...(event.sampleIds.length > 0 ? [counted(event.sampleIds.length, 'sample')] : []),
  ].join('; ');
  return [
    String(event.seq),
    event.at,
    `erase (${event.mode})${binding ? '' : ', dropped'}`,
    event.requestId,
    what,
    event.receipt.sha256.slice(0, 12),
  ];
}
