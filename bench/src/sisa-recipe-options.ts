import { DEFAULT_SISA_OPTIONS } from '@lethe/sisa';
import type { Command } from 'commander';

/** The sisa recipe flags the sisa benches share, defaulting to what `lethe train` uses. */
export function withSisaRecipeOptions(command: Command): Command {
  return command
    .option('--slices <R>', 'slices per shard', String(DEFAULT_SISA_OPTIONS.slices))
    .option(
      '--epochs-per-slice <N>',
      'epochs over each cumulative slice prefix',
      String(DEFAULT_SISA_OPTIONS.epochsPerSlice),
    )
    .option(
      '--router-epochs <N>',
      'router epochs (experts frozen)',
      String(DEFAULT_SISA_OPTIONS.routerEpochs),
    )
    .option(
      '--router-fraction <F>',
      'share of samples the router trains on',
      String(DEFAULT_SISA_OPTIONS.routerFraction),
    );
}
