#!/usr/bin/env node
import { Command } from 'commander';
import { registerDataCommand } from './commands/data.command';
import { registerDemoCommand } from './commands/demo.command';
import { registerEvalCommand } from './commands/eval.command';
import { registerForgetCommand } from './commands/forget.command';
import { registerInfoCommand } from './commands/info.command';
import { registerLedgerCommand } from './commands/ledger.command';
import { registerAuditCommand, registerReceiptsCommand } from './commands/receipts.command';
import { registerReportCommand } from './commands/report.command';
import { registerSamplesCommand } from './commands/samples.command';
import { registerStatusCommand } from './commands/status.command';
import { registerTrainCommand } from './commands/train.command';
import { registerVerifyCommand } from './commands/verify.command';
import { registerUpCommand } from './commands/up.command';
import { setVerbose } from './terminal/engine';
import { errorLine, usageError } from './terminal/errors';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../package.json') as { version: string };

const program = new Command()
  .name('lethe')
  .description('Train a Mixture-of-Experts image classifier and make it forget on request.')
  .version(version)
  .option('-v, --verbose', 'on the engine line, also say why that engine was chosen')
  .configureOutput({ outputError: (message, write) => write(usageError(message)) })
  .hook('preAction', (command) =>
    setVerbose(command.opts<{ verbose?: boolean }>().verbose === true),
  );

registerTrainCommand(program);
registerEvalCommand(program);
registerForgetCommand(program);
registerReceiptsCommand(program);
registerAuditCommand(program);
registerVerifyCommand(program);
registerLedgerCommand(program);
registerSamplesCommand(program);
registerReportCommand(program);
registerInfoCommand(program, version);
registerDataCommand(program);
registerDemoCommand(program);
registerUpCommand(program);
registerStatusCommand(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(errorLine(error));
  process.exitCode = 1;
});
