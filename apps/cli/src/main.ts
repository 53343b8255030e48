#!/usr/bin/env node
import { Command } from 'commander';
import { registerDataCommand } from './commands/data.command';
import { registerDemoCommand } from './commands/demo.command';
import { registerEvalCommand } from './commands/eval.command';
import { registerForgetCommand } from './commands/forget.command';
import { registerInfoCommand } from './commands/info.command';
import { registerAuditCommand, registerReceiptsCommand } from './commands/receipts.command';
import { registerReportCommand } from './commands/report.command';
import { registerStatusCommand } from './commands/status.command';
import { registerTrainCommand } from './commands/train.command';
import { registerVerifyCommand } from './commands/verify.command';
import { registerUpCommand } from './commands/up.command';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../package.json') as { version: string };

const program = new Command()
  .name('lethe')
  .description('Train a Mixture-of-Experts image classifier and make it forget on request.')
  .version(version)
  .showHelpAfterError('(run with --help for usage)');

registerTrainCommand(program);
registerEvalCommand(program);
registerForgetCommand(program);
registerReceiptsCommand(program);
registerAuditCommand(program);
registerVerifyCommand(program);
registerReportCommand(program);
registerInfoCommand(program, version);
registerDataCommand(program);
registerDemoCommand(program);
registerUpCommand(program);
registerStatusCommand(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`lethe: error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
