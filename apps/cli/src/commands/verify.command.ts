import type { Command } from 'commander';
import { verifyForgetting } from '@lethe/sisa';
import { LocalDirStore } from '@lethe/store';
import { remoteVerify } from '../remote/remote-verify';
import {
  type ConnectionFlags,
  explicitCoordinator,
  ignoredWithCoordinator,
  withConnectionOptions,
} from '../remote/target';
import { action, CliError } from '../terminal/errors';

interface VerifyFlags extends ConnectionFlags {
  requestId: string;
  store: string;
  json: boolean;
  coordinator?: string;
}

export function registerVerifyCommand(program: Command): void {
  const registered = program
    .command('verify')
    .description(
      'check from the store alone that an exact (sisa) forget left no forgotten sample in any checkpoint; with --coordinator, that its receipt matches the served experts',
    )
    .requiredOption('--request-id <id>', 'the forget request (receipt) to verify')
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--json', 'print JSON on stdout', false)
    .option(
      '--coordinator <host:port>',
      "check the coordinator's receipt against the experts it serves instead (or set LETHE_COORDINATOR)",
    )
    .action(
      action(async (flags: VerifyFlags, command: Command) => {
        const remote = explicitCoordinator(flags.coordinator, flags);
        if (remote) {
          ignoredWithCoordinator(command, ['store']);
          await remoteVerify(remote, flags);
          return;
        }
        const { requestId } = flags;
        const result = await verifyForgetting(new LocalDirStore(flags.store), requestId);
        if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        else {
          const { checkpoints, objects, forgottenSamples } = result.checked;
          console.log(
            `${requestId}: ${forgottenSamples} forgotten samples; ${checkpoints} checkpoints of the current lineage and ${objects} objects checked`,
          );
          for (const problem of result.problems) console.log(`  problem: ${problem}`);
        }
        if (!result.ok) {
          throw new CliError(
            `verification of ${requestId} failed: ${result.problems.length} problem(s)`,
          );
        }
        if (!flags.json)
          console.log('ok: no checkpoint holds a forgotten sample, and every hash matches');
      }),
    );
  withConnectionOptions(registered);
}
