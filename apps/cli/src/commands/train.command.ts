import type { Command } from 'commander';
import { LocalDirStore } from '@lethe/store';
import { formatRoutingHealth, routingHealth } from '@lethe/metrics';
import { DEFAULT_SISA_OPTIONS, defaultEpochs, defaultTopK } from '@lethe/sisa';
import {
  DEFAULT_ROUTER_NOISE,
  DEFAULT_SPECIALIZE_WEIGHT,
  MAX_SPECIALIZE_WEIGHT,
  PRESETS,
} from '@lethe/model';
import { runTrainJob } from '../jobs/train-job';
import { remoteTrain } from '../remote/remote-jobs';
import {
  type ConnectionFlags,
  explicitCoordinator,
  ignoredWithCoordinator,
  withConnectionOptions,
} from '../remote/target';
import { startEngine } from '../terminal/engine';
import { runSisaTrainJob, sisaProgress } from '../jobs/sisa-jobs';
import { action, CliError } from '../terminal/errors';
import {
  nonNegativeInt,
  nonNegativeNumber,
  oneOf,
  positiveInt,
  positiveNumber,
} from '../terminal/option-parsers';
import { decodeProgress, stepProgress } from '../terminal/progress';
import { percent } from '../terminal/tables';
import { printEvaluation } from './eval.command';

interface TrainFlags extends ConnectionFlags {
  data: string;
  store: string;
  experts: number;
  topK?: number;
  preset: string;
  epochs?: number;
  batch: number;
  lr: number;
  weightDecay: number;
  schedule: 'constant' | 'cosine' | 'one-cycle';
  seed: number;
  augment: boolean;
  balance: number;
  routerNoise: number;
  specialize: number;
  limit?: number;
  subjects?: string;
  mode: 'joint' | 'sisa';
  slices: number;
  assignment: 'uniform' | 'class-balanced';
  routerEpochs: number;
  routerFraction: number;
  requestId?: string;
  coordinator?: string;
  json: boolean;
}

export function registerTrainCommand(program: Command): void {
  const registered = program
    .command('train')
    .description(
      'train a Mixture-of-Experts classifier (jointly, or shard by shard with --mode sisa) and store it; on a coordinator with --coordinator',
    )
    .requiredOption(
      '--data <spec>',
      'cifar10:DIR | cifar100:DIR | cifar100-coarse:DIR | folder:DIR',
    )
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--experts <E>', 'number of experts', positiveInt, 4)
    .option('--top-k <K>', 'experts per image (default 2; sisa: every expert)', positiveInt)
    .option('--preset <name>', `architecture: ${Object.keys(PRESETS).join(', ')}`, 'small')
    .option(
      '--epochs <N>',
      'training epochs (default 10; sisa: 4 over each slice prefix)',
      positiveInt,
    )
    .option('--batch <B>', 'batch size', positiveInt, 128)
    .option('--lr <LR>', 'peak learning rate (AdamW)', positiveNumber, 0.003)
    .option('--weight-decay <WD>', 'decoupled weight decay', nonNegativeNumber, 0.0005)
    .option(
      '--schedule <name>',
      'constant | cosine | one-cycle',
      oneOf(['constant', 'cosine', 'one-cycle'] as const),
      'one-cycle',
    )
    .option('--seed <S>', 'random seed', nonNegativeInt, 0)
    .option('--balance <alpha>', 'weight α of the load-balancing loss', nonNegativeNumber, 0.1)
    .option(
      '--specialize <β>',
      `weight β of the class–expert mutual-information loss that makes experts specialize (cheap, precise forgetting); 0 turns it off, at most ${MAX_SPECIALIZE_WEIGHT}`,
      nonNegativeNumber,
      DEFAULT_SPECIALIZE_WEIGHT,
    )
    .option(
      '--router-noise <std>',
      'std-dev of router-logit noise while training',
      nonNegativeNumber,
      DEFAULT_ROUTER_NOISE,
    )
    .option('--no-augment', 'no random crop / flip')
    .option('--limit <N>', 'train on a seeded subset of N samples', positiveInt)
    .option(
      '--mode <mode>',
      'joint (router and experts together; approximate forgetting) | sisa (one expert per shard, slice by slice; exact forgetting by replay)',
      oneOf(['joint', 'sisa'] as const),
      'joint',
    )
    .option(
      '--slices <R>',
      'sisa: slices per shard (a checkpoint after each)',
      positiveInt,
      DEFAULT_SISA_OPTIONS.slices,
    )
    .option(
      '--assignment <how>',
      'sisa: uniform | class-balanced shards',
      oneOf(['uniform', 'class-balanced'] as const),
      'uniform',
    )
    .option(
      '--router-epochs <N>',
      'sisa: router epochs, experts frozen',
      positiveInt,
      DEFAULT_SISA_OPTIONS.routerEpochs,
    )
    .option(
      '--router-fraction <F>',
      'sisa: share of the samples the router trains on',
      positiveNumber,
      DEFAULT_SISA_OPTIONS.routerFraction,
    )
    .option(
      '--subjects <file>',
      "CSV (sample,subject) or JSONL sidecar giving each sample its data subject, for lethe forget --subject; with --coordinator a path on the coordinator's machine, like --data",
    )
    .option('--json', 'print the result as JSON on stdout', false)
    .option(
      '--coordinator <host:port>',
      'train on this coordinator instead of locally (or set LETHE_COORDINATOR)',
    )
    .option('--request-id <id>', 'with a coordinator: idempotency key of the training request')
    .action(
      action(async (flags: TrainFlags, command: Command) => {
        if (flags.specialize > MAX_SPECIALIZE_WEIGHT) {
          throw new CliError(
            `--specialize must be in [0, ${MAX_SPECIALIZE_WEIGHT}], got ${flags.specialize}`,
          );
        }
        const topK = flags.topK ?? defaultTopK(flags.mode, flags.experts);
        const epochs = flags.epochs ?? defaultEpochs(flags.mode);
        if (topK > flags.experts) {
          throw new CliError(`--top-k (${topK}) cannot exceed --experts (${flags.experts})`);
        }
        const remote = explicitCoordinator(flags.coordinator, flags);
        if (remote) {
          ignoredWithCoordinator(command, ['store']);
          if (flags.mode === 'sisa') {
            // StartTraining's SisaOptions carry slices and router epochs; the rest stays local.
            const localOnly = (['assignment', 'routerFraction'] as const).filter(
              (key) => command.getOptionValueSource(key) === 'cli',
            );
            if (localOnly.length > 0) {
              const names = localOnly.map(
                (k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
              );
              throw new CliError(
                `${names.join(' and ')}: not in the Coordinator API (StartTraining takes --slices and --router-epochs); train with them locally`,
              );
            }
          }
          await remoteTrain(remote, flags);
          return;
        }
        if (flags.requestId !== undefined) {
          throw new CliError('--request-id needs --coordinator (local training is not idempotent)');
        }
        if (!(flags.preset in PRESETS)) {
          throw new CliError(
            `unknown --preset ${flags.preset} (known: ${Object.keys(PRESETS).join(', ')})`,
          );
        }
        const store = new LocalDirStore(flags.store);
        if (flags.mode === 'sisa') {
          if (flags.routerFraction > 1) throw new CliError('--router-fraction must be in (0, 1]');
          await startEngine();
          const shardProgress = sisaProgress();
          const result = await runSisaTrainJob(
            {
              data: flags.data,
              store,
              preset: flags.preset,
              experts: flags.experts,
              topK,
              epochs,
              batchSize: flags.batch,
              learningRate: flags.lr,
              weightDecay: flags.weightDecay,
              seed: flags.seed,
              balanceWeight: flags.balance,
              routerNoise: flags.routerNoise,
              ...(flags.limit ? { limit: flags.limit } : {}),
              slices: flags.slices,
              assignment: flags.assignment,
              routerEpochs: flags.routerEpochs,
              routerFraction: flags.routerFraction,
              ...(flags.subjects ? { subjects: flags.subjects } : {}),
            },
            shardProgress.onProgress,
            (message) => process.stderr.write(`${message}\n`),
          ).finally(() => shardProgress.stop());
          if (flags.json) {
            process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
            return;
          }
          console.log(
            `sisa: ${flags.experts} shards × ${flags.slices} slices on ${result.trainSize} images in ${result.seconds.toFixed(1)} s; stored in ${store.describe()} (manifest revision ${result.revision})`,
          );
          if (result.test) printEvaluation(result.test, result.classes);
          return;
        }
        const progress = stepProgress('train');
        const decoding = decodeProgress();
        const result = await runTrainJob({
          data: flags.data,
          store,
          preset: flags.preset,
          experts: flags.experts,
          topK,
          epochs,
          batchSize: flags.batch,
          learningRate: flags.lr,
          weightDecay: flags.weightDecay,
          schedule: flags.schedule,
          seed: flags.seed,
          augment: flags.augment,
          balanceWeight: flags.balance,
          routerNoise: flags.routerNoise,
          specializeWeight: flags.specialize,
          ...(flags.limit ? { limit: flags.limit } : {}),
          ...(flags.subjects ? { subjects: flags.subjects } : {}),
          onEpoch: (summary) => {
            const health = routingHealth(summary.routing, topK);
            process.stderr.write(
              `epoch ${summary.epoch + 1}: routing as trained (with noise): ${formatRoutingHealth(health)}\n`,
            );
          },
          onStatus: (message) => {
            decoding.stop();
            process.stderr.write(`${message}\n`);
          },
          onDecode: decoding.update,
          onStep: progress.onStep,
        });
        progress.stop();
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
          return;
        }
        const last = result.history.at(-1);
        console.log(
          `trained in ${result.seconds.toFixed(1)} s on ${result.engine.engine}: ${result.trainSize} images × ${result.history.length} epochs, ` +
            `final train loss ${last?.loss.toFixed(3)}, train accuracy ${percent(last?.accuracy ?? Number.NaN)}`,
        );
        if (result.test) printEvaluation(result.test, result.classes);
        console.log(`stored in ${store.describe()} (manifest revision ${result.manifestRevision})`);
      }),
    );
  withConnectionOptions(registered);
}
