import type { Command } from 'commander';
import { LocalDirStore } from '@lethe/store';
import { listReceipts, readReceipt } from '@lethe/unlearning';
import { remoteReceipts } from '../remote/remote-jobs';
import { explicitCoordinator, ignoredWithCoordinator } from '../remote/target';
import { action, CliError } from '../terminal/errors';
import { table } from '../terminal/tables';
import { printReceipt } from './forget.command';

interface ReceiptsFlags {
  store: string;
  id?: string;
  json: boolean;
  coordinator?: string;
}

export function registerReceiptsCommand(program: Command): void {
  program
    .command('receipts')
    .description('list forget receipts, or show one with --id')
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--id <request-id>', 'show this receipt')
    .option('--json', 'print JSON on stdout', false)
    .option(
      '--coordinator <host:port>',
      "list the coordinator's receipts instead (or set LETHE_COORDINATOR)",
    )
    .action(
      action(async (flags: ReceiptsFlags, command: Command) => {
        const remote = explicitCoordinator(flags.coordinator);
        if (remote) {
          ignoredWithCoordinator(command, ['store']);
          await remoteReceipts(remote, flags);
          return;
        }
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
