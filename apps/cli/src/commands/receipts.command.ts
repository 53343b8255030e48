import type { Command } from 'commander';
import { LocalDirStore, openObjectStore } from '@lethe/store';
import {
  type AuditVerification,
  isSampleForgetReceipt,
  isSisaReceipt,
  listReceipts,
  readReceipt,
} from '@lethe/ledger';
import { auditHolesTable, auditTable, readAuditLog, verifyAudit } from '../remote/audit';
import { remoteReceipts } from '../remote/remote-jobs';
import {
  type ConnectionFlags,
  explicitCoordinator,
  ignoredWithCoordinator,
  withConnectionOptions,
} from '../remote/target';
import { action, CliError } from '../terminal/errors';
import { table } from '../terminal/tables';
import { printReceipt, printSampleReceipt, printSisaReceipt } from './forget.command';
import { counted } from '../terminal/wording';

interface ReceiptsFlags extends ConnectionFlags {
  store: string;
  requestId?: string;
  json: boolean;
  coordinator?: string;
}

interface AuditFlags extends ConnectionFlags {
  store: string;
  requestId?: string;
  json: boolean;
  verify: boolean;
  coordinator?: string;
}

/**
 * `lethe audit --store DIR|URL`: the coordinator's audit log of forget requests (every
 * SubmitForget and how each forget job ended), read straight from its object store; with
 * `--verify`, a check that every request has its records (exit 1 when one is missing).
 */
export function registerAuditCommand(program: Command): void {
  const registered = program
    .command('audit')
    .description(
      "show the coordinator's audit log of forget requests: who asked, when, what, and the result",
    )
    .option(
      '--store <dir|url>',
      "the coordinator's object store: DIR, file:DIR or s3://bucket/prefix?endpoint=URL",
      '.lethe/store',
    )
    .option('--request-id <id>', "only this request's entries")
    .option('--json', 'print the entries (or the verification) as JSON on stdout', false)
    .option(
      '--verify',
      'check that every accepted request has its submission and finish records and every receipt its audit trail; exit 1 on a hole',
      false,
    )
    .option(
      '--coordinator <host:port>',
      'with --verify: ask this coordinator (GetJob) how each job the log names ended (or set LETHE_COORDINATOR)',
    )
    .action(
      action(async (flags: AuditFlags) => {
        let store;
        try {
          store = await openObjectStore(flags.store);
        } catch (error) {
          throw new CliError(`--store ${flags.store}: ${(error as Error).message}`);
        }
        if (flags.verify) {
          if (flags.requestId !== undefined) {
            throw new CliError('--verify checks the whole log; leave out --request-id');
          }
          await printAuditVerification(
            store.describe(),
            await verifyAudit(store, explicitCoordinator(flags.coordinator, flags)),
            flags.json,
          );
          return;
        }
        if (flags.coordinator !== undefined) {
          throw new CliError(
            '--coordinator only applies with --verify: no RPC returns the audit log, read it with --store',
          );
        }
        const entries = await readAuditLog(
          store,
          flags.requestId === undefined ? {} : { requestId: flags.requestId },
        );
        if (flags.json) process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
        else if (entries.length === 0) console.log(`no audit entries in ${store.describe()}`);
        else console.log(auditTable(entries));
      }),
    );
  withConnectionOptions(registered);
}

async function printAuditVerification(
  where: string,
  verification: AuditVerification,
  json: boolean,
): Promise<void> {
  if (json) process.stdout.write(`${JSON.stringify(verification, null, 2)}\n`);
  else {
    const { entries, accepted, finished, receipts, jobs } = verification.counts;
    console.log(
      `${where}: ${entries} audit entries, ${accepted} accepted requests, ${finished} finished jobs, ${receipts} published receipts${jobs ? `, ${jobs} jobs looked up` : ''}`,
    );
    if (!verification.ok) console.log(auditHolesTable(verification));
    for (const gap of verification.notChecked) console.log(`  not checked: ${gap}`);
  }
  if (!verification.ok) {
    throw new CliError(`the audit log has ${verification.holes.length} hole(s)`);
  }
  if (!json)
    console.log('ok: every request the log, the receipts and the jobs name has its records');
}

export function registerReceiptsCommand(program: Command): void {
  const registered = program
    .command('receipts')
    .description('list forget receipts, or show one with --request-id')
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--request-id <id>', 'show the receipt of this forget request')
    .option('--json', 'print JSON on stdout', false)
    .option(
      '--coordinator <host:port>',
      "list the coordinator's receipts instead (or set LETHE_COORDINATOR)",
    )
    .action(
      action(async (flags: ReceiptsFlags, command: Command) => {
        const remote = explicitCoordinator(flags.coordinator, flags);
        if (remote) {
          ignoredWithCoordinator(command, ['store']);
          await remoteReceipts(remote, flags);
          return;
        }
        const store = new LocalDirStore(flags.store);
        if (flags.requestId) {
          // The manifest holds every kind of receipt under `receipt/<id>`.
          const receipt = await readReceipt(store, flags.requestId);
          if (!receipt)
            throw new CliError(`no receipt for request ${flags.requestId} in ${store.describe()}`);
          if (flags.json) process.stdout.write(`${JSON.stringify(receipt, null, 2)}\n`);
          else if (isSisaReceipt(receipt)) printSisaReceipt(receipt);
          else if (isSampleForgetReceipt(receipt)) printSampleReceipt(receipt);
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
            ['request', 'created', 'forgot', 'method', 'experts', 'forgotten-class acc after'],
            ...receipts.map((r) =>
              isSisaReceipt(r)
                ? [
                    r.requestId,
                    r.createdAt,
                    counted(r.request.sampleIds.length, 'sample'),
                    'sisa-replay (exact)',
                    r.sisa.shards.map((s) => s.shard).join(',') || '—',
                    '—',
                  ]
                : isSampleForgetReceipt(r)
                  ? [
                      r.requestId,
                      r.createdAt,
                      counted(r.request.sampleIds.length, 'sample'),
                      `${r.request.method} (approximate)`,
                      r.expertsRetrained.join(',') || '—',
                      '—',
                    ]
                  : [
                      r.requestId,
                      r.createdAt,
                      `class ${r.request.className}`,
                      r.request.method,
                      r.expertsRetrained.join(',') || '—',
                      r.metrics.after.forgottenClassTestAccuracy.toFixed(2),
                    ],
            ),
          ]),
        );
      }),
    );
  withConnectionOptions(registered);
}
