import type { Command } from 'commander';
import { humanTextOnStderr } from '../demo/demo-result';
import { runDistributedDemo } from '../demo/distributed-demo';
import { runLocalDemo } from '../demo/local-demo';
import { action } from '../terminal/errors';
import { positiveInt } from '../terminal/option-parsers';

interface DemoFlags {
  dir: string;
  local: boolean;
  workers: number;
  epochs: number;
  perClass: number;
  json: boolean;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'a short offline demonstration on generated images: starts a coordinator and workers on this machine, trains, forgets a class, prints the receipt, stops them',
    )
    .option(
      '--dir <dir>',
      'demo directory: generated data, store, coordinator database, logs (replaced on each run)',
      '.lethe/demo',
    )
    .option('--local', 'run everything in this process instead (no coordinator or workers)', false)
    .option('--workers <N>', 'worker processes', positiveInt, 2)
    .option('--epochs <N>', 'training epochs', positiveInt, 4)
    .option('--per-class <N>', 'training images per class', positiveInt, 400)
    .option(
      '--json',
      'print the receipt and the metrics as JSON on stdout (the rest goes to stderr)',
      false,
    )
    .action(
      action(async (flags: DemoFlags) => {
        const run = () => (flags.local ? runLocalDemo(flags) : runDistributedDemo(flags));
        if (!flags.json) {
          await run();
          return;
        }
        const result = await humanTextOnStderr(run);
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      }),
    );
}
