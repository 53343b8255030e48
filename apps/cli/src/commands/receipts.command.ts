import type { Command } from 'commander';
import { LocalDirStore } from '@lethe/store';
import { listReceipts, readReceipt } from '@lethe/unlearning';
import { action, CliError } from '../terminal/errors';
import { table } from '../terminal/tables';
import { printReceipt } from './forget.command';

export function registerReceiptsCommand(program: Command): void {
  program
    .command('receipts')
    .description('list forget receipts, or show one with --id')
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--id <request-id>', 'show this receipt')
    .option('--json', 'print JSON on stdout', false)
    .action(
      action(async (flags: { store: string; id?: string; json: boolean }) => {
        const store = new LocalDirStore(flags.store);
        if (flags.id) {
          const receipt = await readReceipt(store, flags.id);
          if (!receipt)
            throw new CliError(`no receipt for request ${flags.id} in ${store.describe()}`);
          if (flags.json) process.stdout.write(`${JSON.stringify(receipt, null, 2)}\n`);
          else printReceipt(receipt);
          return;
        }
        const receipts = await listReceipts(store);
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(receipts, null, 2)}\n`);
          return;
        }
        if (receipts.length === 0) {
          console.log('no receipts');
          return;
        }
        console.log(
          table([
            ['request', 'created', 'class', 'method', 'experts', 'forgotten-class acc after'],
            ...receipts.map((r) => [
              r.requestId,
              r.createdAt,
              r.request.className,
              r.request.method,
              r.expertsRetrained.join(',') || '—',
              r.metrics.after.forgottenClassTestAccuracy.toFixed(2),
            ]),
          ]),
        );
      }),
    );
}
