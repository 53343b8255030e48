import type { Command } from 'commander';
import { verifyForgetting } from '@lethe/sisa';
import { LocalDirStore } from '@lethe/store';
import { action, CliError } from '../terminal/errors';

interface VerifyFlags {
  requestId: string;
  store: string;
  json: boolean;
}

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description(
      'check from the store alone that an exact (sisa) forget left no forgotten sample in any checkpoint',
    )
    .requiredOption('--request-id <id>', 'the forget request (receipt) to verify')
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--json', 'print JSON on stdout', false)
    .action(
      action(async (flags: VerifyFlags) => {
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
}
