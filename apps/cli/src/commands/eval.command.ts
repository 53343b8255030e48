import type { Command } from 'commander';
import { batches, type Split } from '@lethe/data';
import { openData } from '../jobs/open-data';
import {
  DEAD_EXPERT_SHARE,
  DEFAULT_SELECTION,
  formatRoutingHealth,
  formatSelectionRule,
  parseSelectionRule,
  type RoutingHealth,
  routingHealth,
  type SelectionRule,
} from '@lethe/metrics';
import { evaluate, type Evaluation, loadModel } from '@lethe/model';
import { LocalDirStore } from '@lethe/store';
import { requireTrainedModel } from '../jobs/training-data';
import { remoteEval } from '../remote/remote-jobs';
import {
  type ConnectionFlags,
  explicitCoordinator,
  ignoredWithCoordinator,
  withConnectionOptions,
} from '../remote/target';
import { startEngine } from '../terminal/engine';
import { action, CliError } from '../terminal/errors';
import { oneOf, positiveInt } from '../terminal/option-parsers';
import { percent, table } from '../terminal/tables';

interface EvalFlags extends ConnectionFlags {
  store: string;
  data?: string;
  split: Split;
  batch: number;
  json: boolean;
  coordinator?: string;
  ignoreOutputMask: boolean;
  select?: string;
}

export function registerEvalCommand(program: Command): void {
  const registered = program
    .command('eval')
    .description(
      "evaluate the stored model (or a coordinator's): overall and per-class accuracy, class × expert routing",
    )
    .option(
      '--data <spec>',
      'cifar10:DIR | cifar100:DIR | cifar100-coarse:DIR | folder:DIR (with a coordinator, default: the training data)',
    )
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--split <split>', 'train | test', oneOf(['train', 'test'] as const), 'test')
    .option('--batch <B>', 'batch size', positiveInt, 256)
    .option('--json', 'print the result as JSON on stdout', false)
    .option(
      '--coordinator <host:port>',
      "evaluate the coordinator's current model (or set LETHE_COORDINATOR)",
    )
    .option(
      '--select <rule>',
      `collateral as a forget with this expert selection would see it: coverage:F | top:N (default: the forget default, ${formatSelectionRule(DEFAULT_SELECTION)})`,
    )
    .option(
      '--ignore-output-mask',
      'with a coordinator: evaluate the raw model, ignoring classes suppressed at serving time',
      false,
    )
    .action(
      action(async (flags: EvalFlags, command: Command) => {
        const remote = explicitCoordinator(flags.coordinator, flags);
        const rule = flags.select === undefined ? undefined : selectionRule(flags.select);
        if (remote) {
          if (rule) throw new CliError('--select needs a local store (--store)');
          ignoredWithCoordinator(command, ['store']);
          await remoteEval(remote, {
            ...(flags.data ? { data: flags.data } : {}),
            ...(command.getOptionValueSource('split') === 'cli' ? { split: flags.split } : {}),
            batch: flags.batch,
            ignoreOutputMask: flags.ignoreOutputMask,
            json: flags.json,
          });
          return;
        }
        if (flags.ignoreOutputMask) throw new CliError('--ignore-output-mask needs --coordinator');
        if (flags.data === undefined) {
          throw new CliError("required option '--data <spec>' not specified");
        }
        const dataSpec = flags.data;
        const store = new LocalDirStore(flags.store);
        const data = await openData(dataSpec, flags.split);
        await requireTrainedModel(store);
        await startEngine();
        const { model, card } = await loadModel(store);
        try {
          if (data.classes.length !== card.classes.length) {
            throw new CliError(
              `the stored model has ${card.classes.length} classes, ${dataSpec} has ${data.classes.length}`,
            );
          }
          const normalise = card.normalisation;
          const result = evaluate(
            model,
            batches(data, { batchSize: flags.batch, shuffle: false, normalise }),
          );
          if (flags.json) {
            const routingHealth = evaluationRoutingHealth(result, rule);
            process.stdout.write(`${JSON.stringify({ ...result, routingHealth }, null, 2)}\n`);
          } else {
            printEvaluation(result, card.classes, rule);
          }
        } finally {
          model.dispose();
        }
      }),
    );
  withConnectionOptions(registered);
}

export function printEvaluation(result: Evaluation, classes: string[], rule?: SelectionRule): void {
  console.log(`accuracy ${percent(result.accuracy, 2)} on ${result.count} images`);
  const experts = result.routing[0]?.length ?? 0;
  const health = evaluationRoutingHealth(result, rule);
  const header = [
    'class',
    'accuracy',
    'n',
    ...Array.from({ length: experts }, (_, e) => `e${e}`),
    'collateral',
  ];
  const rows = result.perClass.map((p, c) => {
    const routed = result.routing[c]!;
    const slots = routed.reduce((a, b) => a + b, 0);
    return [
      classes[c] ?? String(c),
      percent(p.accuracy),
      p.total,
      ...routed.map((n) => (slots === 0 ? '—' : percent(n / slots, 0))),
      health && slots > 0 ? `${health.collateral[c]!.toFixed(1)}%` : '—',
    ];
  });
  const load = health
    ? ['load × fair', '', '', ...health.utilisation.map((u) => u.toFixed(2)), '']
    : [];
  if (!health && result.count > 0 && experts > 0) {
    console.log(
      `per-class accuracy; every image goes to all ${experts} experts, so there is no routing to judge (a sisa model's default; its forgets replay the shards holding the samples):`,
    );
    console.log(table([['class', 'accuracy', 'n'], ...rows.map((row) => row.slice(0, 3))]));
    return;
  }
  console.log(
    "per-class accuracy, share of routing slots per expert, and collateral (the other classes' share on the experts a forget of the class would retrain):",
  );
  console.log(table([header, ...rows, ...(health ? [load] : [])]));
  if (health) {
    console.log(`routing health: ${formatRoutingHealth(health)}`);
    if (health.deadExperts.length > 0) {
      console.log(
        `warning: ${health.deadExperts.map((e) => `e${e}`).join(', ')} ${health.deadExperts.length === 1 ? 'gets' : 'get'} less than ${DEAD_EXPERT_SHARE * 100}% of ${health.deadExperts.length === 1 ? 'its' : 'their'} fair share of routing`,
      );
    }
  }
}

/** Routing health of an evaluation's [class][expert] slot table (k = slots per image). */
export function evaluationRoutingHealth(
  result: Evaluation,
  rule?: SelectionRule,
): RoutingHealth | undefined {
  const slots = result.routing.flat().reduce((a, b) => a + b, 0);
  if (result.count === 0 || slots === 0) return undefined;
  const k = Math.round(slots / result.count);
  // Every expert on every image (a sisa model's default): shares and collateral say nothing.
  if (k >= (result.routing[0]?.length ?? 0)) return undefined;
  return routingHealth(result.routing, k, rule);
}

function selectionRule(text: string): SelectionRule {
  try {
    return parseSelectionRule(text);
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error));
  }
}
