import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { isClassReceipt, parseReceipt, receiptKind } from '@lethe/ledger';
import { loadSisa, type SisaReceipt } from '@lethe/sisa';
import { limitTrainingSet } from '@lethe/data';
import { openData } from '../jobs/open-data';
import { LocalDirStore } from '@lethe/store';
import {
  type ClassForgetRequest,
  DEFAULT_FORGET_RECIPE,
  FORGET_METHODS,
  type ForgetMethod,
  defaultOutputThreads,
  DEFAULT_SELECTION,
  type ForgetEstimate,
  type ForgetMetrics,
  type ForgetPreview,
  type ForgetReceipt,
  forgetClass,
  formatSelectionRule,
  MEASURE_MODES,
  type MeasureMode,
  previewClassForget,
  DEFAULT_SAMPLE_FORGET_RECIPE,
  SAMPLE_FORGET_METHODS,
  SAMPLE_MEASURE,
  type SampleForgetMethod,
  type SampleForgetPreview,
  type SampleForgetReceipt,
  type SampleForgetRequest,
  UNLEARNING_LOSSES,
  type UnlearningLoss,
} from '@lethe/unlearning';
import { runJointSampleForget } from '../jobs/joint-sample-forget';
import { requireTrainedModel, storedTrainingSubset } from '../jobs/training-data';
import {
  newRequestId,
  readSampleIds,
  REMOTE_FORGET_METHODS,
  type RemoteForgetFlags,
  type RemoteForgetMethod,
  remoteForget,
  remoteForgetPreview,
} from '../remote/remote-jobs';
import {
  type ConnectionFlags,
  type CoordinatorTarget,
  explicitCoordinator,
  ignoredWithCoordinator,
  withConnectionOptions,
} from '../remote/target';
import { startEngine } from '../terminal/engine';
import {
  classSampleIds,
  holdsSisaModel,
  previewSisaForgetJob,
  printSisaPlan,
  runSisaForgetJob,
  sisaProgress,
} from '../jobs/sisa-jobs';
import { runSubjectForget } from '../jobs/subject-forget';
import { action, CliError } from '../terminal/errors';
import {
  nonNegativeInt,
  nonNegativeNumber,
  oneOf,
  positiveInt,
  positiveNumber,
} from '../terminal/option-parsers';
import { stepProgress } from '../terminal/progress';
import { FORGET_METRICS_HEADER, table } from '../terminal/tables';
import { counted, ofSubjects } from '../terminal/wording';

const TARGETED = DEFAULT_FORGET_RECIPE.targeted;
const BASELINE = DEFAULT_FORGET_RECIPE.baseline;
/** Every method a request may name: class ones, sisa replay, and sample ones (joint models). */
const CLI_METHODS = [...new Set([...REMOTE_FORGET_METHODS, ...SAMPLE_FORGET_METHODS])];
type CliMethod = RemoteForgetMethod | SampleForgetMethod;

interface ForgetFlags extends ConnectionFlags {
  store: string;
  data?: string;
  class?: string;
  samples?: string;
  samplesFile?: string;
  subject?: string;
  coordinator?: string;
  method?: CliMethod;
  loss?: UnlearningLoss;
  epochs?: number;
  lr?: number;
  lambda?: number;
  retainFraction?: number;
  anchor?: number;
  measure?: MeasureMode;
  measureThreads?: number;
  dryRun: boolean;
  select?: string;
  maskOutput: boolean;
  batch: number;
  seed: number;
  requestId?: string;
  json: boolean;
  beforeFrom?: string;
}

async function readReceiptFile(file: string): Promise<ForgetReceipt> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read --before-from ${file}: ${error.code ?? error.message}`);
  });
  let receipt;
  try {
    receipt = parseReceipt(JSON.parse(text));
  } catch (error) {
    throw new CliError(
      `--before-from ${file}: ${(error as Error).message} (npx lethe forget --json writes one)`,
    );
  }
  if (!isClassReceipt(receipt)) {
    throw new CliError(
      `--before-from ${file} is a ${receiptKind(receipt)} forget's receipt; its "before" metrics are not a class's`,
    );
  }
  return receipt;
}

export function registerForgetCommand(program: Command): void {
  const registered = program
    .command('forget')
    .description(
      'forget a class (retrain only the experts that saw it, plus the router) or training samples (exact replay on a sisa model); store a receipt',
    )
    .option('--class <name|id>', 'class to forget')
    .option(
      '--data <spec>',
      'the training data of the stored model (cifar10:DIR, ...); required without a coordinator',
    )
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option(
      '--method <name>',
      `a class: ${FORGET_METHODS.join(' | ')}, or sisa-replay with a coordinator (default: targeted; with a coordinator, the model's); ` +
        `samples or subjects of a joint model: ${SAMPLE_FORGET_METHODS.join(' | ')} (default: ${DEFAULT_SAMPLE_FORGET_RECIPE.method})`,
      oneOf(CLI_METHODS),
    )
    .option(
      '--loss <name>',
      `targeted only: ${UNLEARNING_LOSSES.join(' | ')} (default: distill)`,
      oneOf(UNLEARNING_LOSSES),
    )
    .option(
      '--epochs <N>',
      `retraining epochs (default: ${TARGETED.epochs} for targeted, ${BASELINE.epochs} for the baselines)`,
      positiveInt,
    )
    .option(
      '--lr <LR>',
      `retraining learning rate (default: ${TARGETED.learningRate} for targeted, ${BASELINE.learningRate} for the baselines)`,
      positiveNumber,
    )
    .option(
      '--lambda <λ>',
      `weight of the unlearning loss on forgotten samples (default: ${TARGETED.lambda})`,
      positiveNumber,
    )
    .option(
      '--retain-fraction <F>',
      `targeted only: retrain on all forgotten samples and this share of retained ones, drawn mostly from those routed to the retrained experts (default: ${TARGETED.retainFraction})`,
      positiveNumber,
    )
    .option(
      '--anchor <μ>',
      `weight of the anchor to the model before forgetting on retained samples; 0 turns it off. A class (targeted): KL(old gates ‖ new gates) of the router (default: ${TARGETED.anchor}); samples (neggrad+): KL(old outputs ‖ new outputs) (default: ${DEFAULT_SAMPLE_FORGET_RECIPE.anchor})`,
      nonNegativeNumber,
    )
    .option(
      '--measure-threads <N>',
      'worker threads the before/after measurement spreads its inference over (default: one per core, at most 4, on the wasm engine; 1 measures in this thread)',
      positiveInt,
    )
    .option(
      '--measure <mode>',
      `before/after metrics on: sample (all forgotten, at most ${SAMPLE_MEASURE.retained} retained training samples, the whole test split) | full (default: ${DEFAULT_FORGET_RECIPE.measure})`,
      oneOf(MEASURE_MODES),
    )
    .option(
      '--dry-run',
      'print the plan (experts, what they carry of the rest of the data, estimated cost) and change nothing',
      false,
    )
    .option(
      '--select <rule>',
      `targeted only: coverage:F | top:N (default: ${formatSelectionRule(DEFAULT_SELECTION)})`,
    )
    .option('--mask-output', 'also never predict the class at serving time', false)
    .option('--batch <B>', 'batch size', positiveInt, DEFAULT_FORGET_RECIPE.batchSize)
    .option('--seed <S>', 'random seed', nonNegativeInt, 0)
    .option('--request-id <id>', 'idempotency key: re-sending it returns the same receipt')
    .option('--json', 'print the receipt as JSON on stdout', false)
    .option(
      '--before-from <receipt.json>',
      'reuse the "before" metrics of an earlier receipt (--json output) of the same model and class',
    )
    .option(
      '--coordinator <host:port>',
      'forget on this coordinator instead of locally (or set LETHE_COORDINATOR)',
    )
    .option(
      '--samples <ids>',
      'training sample ids to forget, comma-separated (exact replay on a --mode sisa model, approximate retraining on a joint one)',
    )
    .option('--samples-file <file>', 'a file of sample ids to forget, one per line')
    .option(
      '--subject <ids>',
      'data subjects to forget, comma-separated: all their training samples (lethe train --subjects)',
    )
    .action(
      action(async (flags: ForgetFlags, command: Command) => {
        if (flags.method === 'mask' && flags.maskOutput) {
          throw new CliError('--mask-output is what --method mask does: give one of them');
        }
        const bySamples = flags.samples !== undefined || flags.samplesFile !== undefined;
        if (flags.subject !== undefined) {
          if (bySamples || flags.class !== undefined) {
            throw new CliError(
              'invalid argument: give --subject alone, not with --class or --samples',
            );
          }
          const subjects = [...new Set(flags.subject.split(',').map((s) => s.trim()))];
          if (subjects.some((s) => s.length === 0)) throw new CliError('--subject has an empty id');
          const requestId = flags.requestId ?? newRequestId();
          if (!flags.requestId) process.stderr.write(`request id ${requestId}\n`);
          const coordinator = explicitCoordinator(flags.coordinator, flags);
          if (coordinator) {
            ignoredWithCoordinator(command, ['store', 'data']);
            // The coordinator expands the subjects and picks replay or approximate forgetting.
            await forgetRemotely(coordinator, { ...remoteRecipe(flags), subjects, requestId });
            return;
          }
          if (flags.dryRun && (await holdsSisaModel(new LocalDirStore(flags.store)))) {
            const plan = await previewSisaForgetJob(new LocalDirStore(flags.store), {
              subjects,
              requestId,
              ...(flags.data ? { data: flags.data } : {}),
            });
            if (flags.json) process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
            else printSisaPlan(plan);
            return;
          }
          const recipe = sampleRecipe(flags, command);
          const result = await runSubjectForget({
            store: new LocalDirStore(flags.store),
            subjects,
            requestId,
            ...(Object.keys(recipe).length > 0 ? { recipe } : {}),
            dryRun: flags.dryRun,
            ...(flags.data ? { data: flags.data } : {}),
          });
          printSampleResult(result, flags.json);
          return;
        }
        if (bySamples && flags.class !== undefined) {
          throw new CliError('give either --class or --samples/--samples-file, not both');
        }
        if (!bySamples && flags.class === undefined) {
          throw new CliError('give the class to forget: --class <name|id>');
        }
        const remote = explicitCoordinator(flags.coordinator, flags);
        if (remote) {
          ignoredWithCoordinator(command, ['store', 'data']);
          const samples = await readSampleIds(flags.samples, flags.samplesFile);
          const requestId = flags.requestId ?? newRequestId();
          if (!flags.requestId) process.stderr.write(`request id ${requestId}\n`);
          await forgetRemotely(remote, {
            ...remoteRecipe(flags),
            ...(samples ? { samples } : { class: flags.class! }),
            requestId,
          });
          return;
        }
        // On a sisa model a class is forgotten exactly, as the set of its training samples.
        const sisaClass =
          !bySamples &&
          flags.method === undefined &&
          (await holdsSisaModel(new LocalDirStore(flags.store)));
        if (bySamples && flags.method !== 'sisa-replay') {
          const store = new LocalDirStore(flags.store);
          if (!(await holdsSisaModel(store))) {
            // A joint model forgets samples approximately: the experts that saw them retrain.
            // A wrong store fails in one line before a request id is made up and printed.
            await requireTrainedModel(store);
            const sampleIds = (await readSampleIds(flags.samples, flags.samplesFile))!;
            const requestId = flags.requestId ?? newRequestId();
            if (!flags.requestId) process.stderr.write(`request id ${requestId}\n`);
            const result = await runJointSampleForget({
              store,
              request: { ...sampleRecipe(flags, command), requestId, sampleIds },
              dryRun: flags.dryRun,
              ...(flags.data ? { data: flags.data } : {}),
              ...(flags.measureThreads ? { measureThreads: flags.measureThreads } : {}),
            });
            printSampleResult(result, flags.json);
            return;
          }
        }
        if (bySamples || sisaClass || flags.method === 'sisa-replay') {
          // Samples are forgotten exactly, by replay, on a model trained with --mode sisa.
          if (!bySamples && !sisaClass)
            throw new CliError('--method sisa-replay needs --samples or --samples-file');
          if (flags.dryRun) {
            const store = new LocalDirStore(flags.store);
            const sampleIds = sisaClass
              ? await classSampleIds(store, flags.class!, flags.data)
              : (await readSampleIds(flags.samples, flags.samplesFile))!;
            const plan = await previewSisaForgetJob(store, {
              sampleIds,
              ...(flags.requestId ? { requestId: flags.requestId } : {}),
              ...(flags.data ? { data: flags.data } : {}),
            });
            if (flags.json) process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
            else printSisaPlan(plan);
            return;
          }
          // The model is checked first, so a wrong store fails before the engine starts.
          await loadSisa(new LocalDirStore(flags.store));
          await startEngine();
          const sampleIds = sisaClass
            ? await classSampleIds(new LocalDirStore(flags.store), flags.class!, flags.data)
            : (await readSampleIds(flags.samples, flags.samplesFile))!;
          const requestId = flags.requestId ?? newRequestId();
          if (!flags.requestId) process.stderr.write(`request id ${requestId}\n`);
          const progress = sisaProgress();
          const receipt = await runSisaForgetJob(
            new LocalDirStore(flags.store),
            { requestId, sampleIds, ...(flags.data ? { data: flags.data } : {}) },
            progress.onProgress,
          ).finally(() => progress.stop());
          if (flags.json) {
            process.stdout.write(`${JSON.stringify(receipt, null, 2)}\n`);
            return;
          }
          printSisaReceipt(receipt);
          return;
        }
        if (flags.data === undefined) {
          throw new CliError("required option '--data <spec>' not specified");
        }
        const className = flags.class!;
        if (
          flags.method !== undefined &&
          !(FORGET_METHODS as readonly string[]).includes(flags.method)
        ) {
          throw new CliError(
            `--method ${flags.method} forgets samples or subjects; a class takes ${FORGET_METHODS.join(', ')}`,
          );
        }
        const method = (flags.method ?? 'targeted') as ForgetMethod;
        const store = new LocalDirStore(flags.store);
        const [fullTrain, test] = await Promise.all([
          openData(flags.data, 'train'),
          openData(flags.data, 'test'),
        ]);
        const trained = await storedTrainingSubset(store);
        const train = limitTrainingSet(fullTrain, trained.limit, trained.seed);
        await requireTrainedModel(store);
        await startEngine();
        const request: ClassForgetRequest = {
          class: className,
          method,
          maskOutput: flags.maskOutput,
          batchSize: flags.batch,
          seed: flags.seed,
          ...(flags.epochs !== undefined ? { epochs: flags.epochs } : {}),
          ...(flags.lr !== undefined ? { learningRate: flags.lr } : {}),
          ...(flags.lambda !== undefined ? { lambda: flags.lambda } : {}),
          ...(flags.loss ? { loss: flags.loss } : {}),
          ...(flags.select ? { select: flags.select } : {}),
          ...(flags.retainFraction !== undefined ? { retainFraction: flags.retainFraction } : {}),
          ...(flags.anchor !== undefined ? { anchor: flags.anchor } : {}),
          ...(flags.measure ? { measure: flags.measure } : {}),
          ...(flags.requestId ? { requestId: flags.requestId } : {}),
        };
        if (flags.dryRun) {
          // Estimated on the threads the forget itself would measure with.
          const measureThreads = flags.measureThreads ?? defaultOutputThreads();
          const preview = await previewClassForget({ store, train, test, measureThreads }, request);
          if (flags.json) process.stdout.write(`${JSON.stringify(preview, null, 2)}\n`);
          else printPreview(preview);
          return;
        }
        const progress = stepProgress('forget');
        // Said after the receipt, where the eye lands, not among the progress lines.
        const warnings: string[] = [];
        const receipt = await forgetClass(
          {
            store,
            train,
            test,
            onStatus: (m) => process.stderr.write(`${m}\n`),
            onWarning: (m) => warnings.push(m),
            onStep: progress.onStep,
            measureThreads: flags.measureThreads ?? defaultOutputThreads(),
            ...(flags.beforeFrom ? { beforeFrom: await readReceiptFile(flags.beforeFrom) } : {}),
          },
          request,
        );
        progress.stop();
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(receipt, null, 2)}\n`);
        } else printReceipt(receipt);
        for (const warning of warnings) process.stderr.write(`${warning}\n`);
      }),
    );
  withConnectionOptions(registered);
}

/** The recipe flags of a request through a coordinator; unset ones stay unset (its defaults). */
function remoteRecipe(flags: ForgetFlags): Omit<RemoteForgetFlags, 'requestId'> {
  const method = flags.method;
  if (method !== undefined && !(REMOTE_FORGET_METHODS as readonly string[]).includes(method)) {
    throw new CliError(
      `--method ${method} is not available through a coordinator (known there: ${REMOTE_FORGET_METHODS.join(', ')})`,
    );
  }
  return {
    ...(method ? { method: method as RemoteForgetMethod } : {}),
    ...(flags.loss ? { loss: flags.loss } : {}),
    ...(flags.select ? { select: flags.select } : {}),
    ...(flags.retainFraction !== undefined ? { retainFraction: flags.retainFraction } : {}),
    ...(flags.epochs !== undefined ? { epochs: flags.epochs } : {}),
    ...(flags.lr !== undefined ? { lr: flags.lr } : {}),
    ...(flags.lambda !== undefined ? { lambda: flags.lambda } : {}),
    ...(flags.anchor !== undefined ? { anchor: flags.anchor } : {}),
    ...(flags.measure ? { measure: flags.measure } : {}),
    maskOutput: flags.maskOutput,
    batch: flags.batch,
    seed: flags.seed,
    json: flags.json,
    dryRun: flags.dryRun,
  };
}

/** SubmitForget (a dry run prints the plan the coordinator made), then the job and receipt. */
async function forgetRemotely(target: CoordinatorTarget, flags: RemoteForgetFlags): Promise<void> {
  if (!flags.dryRun) {
    await remoteForget(target, flags);
    return;
  }
  const preview = await remoteForgetPreview(target, flags);
  if (flags.json) process.stdout.write(`${JSON.stringify(preview, null, 2)}\n`);
  else if ('replay' in preview) printSisaPlan(preview);
  else if (preview.request.kind === 'samples') printSamplePreview(preview as SampleForgetPreview);
  else printPreview(preview as ForgetPreview);
}

/**
 * The recipe of a sample forget on a joint model from the flags given (unset ones stay unset:
 * the library fills its defaults). Class-only flags are refused.
 */
function sampleRecipe(
  flags: ForgetFlags,
  command: Command,
): Omit<SampleForgetRequest, 'requestId' | 'sampleIds' | 'subjects'> {
  const classOnly = ['loss', 'select', 'maskOutput', 'beforeFrom'].filter(
    (name) => command.getOptionValueSource(name) === 'cli',
  );
  if (classOnly.length > 0) {
    throw new CliError(
      `invalid argument: ${classOnly.map((n) => `--${n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')} apply to class forgetting, not to samples or subjects`,
    );
  }
  const method = flags.method;
  if (method !== undefined && !(SAMPLE_FORGET_METHODS as readonly string[]).includes(method)) {
    throw new CliError(
      `invalid argument: --method ${method} forgets a class; samples and subjects of a joint model take ${SAMPLE_FORGET_METHODS.join(', ')}`,
    );
  }
  const given = (name: string): boolean => command.getOptionValueSource(name) === 'cli';
  return {
    ...(method ? { method: method as SampleForgetMethod } : {}),
    ...(flags.epochs !== undefined ? { epochs: flags.epochs } : {}),
    ...(flags.lr !== undefined ? { learningRate: flags.lr } : {}),
    ...(flags.lambda !== undefined ? { lambda: flags.lambda } : {}),
    ...(flags.anchor !== undefined ? { anchor: flags.anchor } : {}),
    ...(flags.retainFraction !== undefined ? { retainFraction: flags.retainFraction } : {}),
    ...(flags.measure ? { measure: flags.measure } : {}),
    ...(given('batch') ? { batchSize: flags.batch } : {}),
    ...(given('seed') ? { seed: flags.seed } : {}),
  };
}

type SampleResult = SisaReceipt | SampleForgetReceipt | SampleForgetPreview;

function printSampleResult(result: SampleResult, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else if ('estimate' in result) printSamplePreview(result);
  else if (result.mode === 'exact') printSisaReceipt(result);
  else printSampleReceipt(result);
}

/** An approximate sample forget: what was retrained and the evidence, before and after. */
export function printSampleReceipt(receipt: SampleForgetReceipt): void {
  const { request, plan, metrics, timings } = receipt;
  const of = ofSubjects(request.subjects);
  console.log(
    `forgot ${counted(request.sampleIds.length, 'sample')}${of} (${request.method}, ${receipt.mode}) — request ${receipt.requestId}`,
  );
  console.log(
    `plan: the routing lineage (${counted(plan.lineageEpochs, 'epoch')}) says experts ${plan.experts.join(', ') || 'none'} saw them; ` +
      `retrained ${receipt.expertsRetrained.map((e) => `e${e}`).join(', ') || 'no expert'} + router; ` +
      `they carry ${plan.collateral.toFixed(1)}% of the retained samples' routing`,
  );
  console.log(`changed: ${receipt.partsChanged.join(', ') || 'no weights'}`);
  if (receipt.ascentStop !== undefined) {
    console.log(
      `ascent on a forgotten sample stopped at loss ${receipt.ascentStop.toFixed(3)}: the model's mean test loss, where an unseen sample is`,
    );
  }
  const row = (name: string, m: SampleForgetReceipt['metrics']['before']): string[] => [
    name,
    pct(m.ua),
    pct(m.ra),
    pct(m.ta),
    pct(m.miaEfficacy),
  ];
  console.log(
    table([
      ['', 'UA', 'RA', 'TA', 'MIA-Efficacy'],
      row('before', metrics.before),
      row('after', metrics.after),
    ]),
  );
  const on = metrics.after.measuredOn;
  console.log(
    `UA: error on the forgotten samples; RA: accuracy on retained ones; TA: test accuracy; MIA-Efficacy: forgotten samples an attack calls non-members. ` +
      `Measured on ${on.trainForgotten} forgotten and ${on.trainRetained} of ${on.trainRetainedOf} retained training samples, ${on.test} test samples (${on.mode}); ` +
      'a model retrained without them is the reference (docs/forgetting-samples.md)',
  );
  console.log(
    `time: forget ${timings.forgetSeconds.toFixed(1)} s, measure ${timings.measureSeconds.toFixed(1)} s, total ${timings.totalSeconds.toFixed(1)} s`,
  );
  console.log(
    `receipt stored; manifest revision ${receipt.manifest.before} → ${receipt.manifest.after}`,
  );
}

/** A dry run of a sample forget: the experts from the lineage, what they carry, the cost. */
function printSamplePreview(preview: SampleForgetPreview): void {
  const { plan, estimate, request } = preview;
  console.log(
    `dry run: forgetting ${counted(plan.samples, 'sample')} (${request.method}) on manifest revision ${preview.manifestRevision} would retrain ` +
      (request.method === 'retrain'
        ? `a fresh model (${estimate.expertsRetrained} experts)`
        : `experts ${plan.experts.map((e) => `e${e}`).join(', ') || 'none'} + router`),
  );
  console.log(
    table([
      ['expert', 'forgotten samples it saw'],
      ...plan.experts.map((e) => [`e${e}`, String(plan.seenBy[e])]),
    ]),
  );
  console.log(
    `collateral: the planned experts carry ${plan.collateral.toFixed(1)}% of the retained samples' routing (${plan.retainedRouted} samples; last of ${counted(plan.lineageEpochs, 'recorded epoch')})`,
  );
  console.log(
    `work: ${estimate.trainingSamples} samples × ${estimate.epochs} epochs × ${estimate.expertsRetrained} experts; ` +
      `measurement ${estimate.measuredSamples} samples after, ${estimate.measuredSamples - estimate.measuredBeforeReused} before (the store holds the rest)`,
  );
  console.log(estimateLine(estimate));
  console.log('nothing was changed');
}

/** The estimate's seconds and the rate they assume: the last forget's, or the model's training. */
function estimateLine(estimate: ForgetEstimate): string {
  const { seconds, rate, trainingRate } = estimate;
  if (!seconds) return 'estimate: no seconds (no forget or training on this model was timed)';
  // A coordinator older than the rate field sends the training rate alone.
  const from =
    rate?.source === 'forget'
      ? `the last such forget's rates (request ${rate.requestId}: retraining ${rate.retrainingRate.toFixed(0)} img/s, measuring ${rate.inferenceRate.toFixed(0)} samples/s)`
      : `the ${(rate?.retrainingRate ?? trainingRate ?? 0).toFixed(0)} img/s the model trained at (no such forget was timed yet)`;
  return `estimate: about ${seconds.total.toFixed(0)} s (retraining ${seconds.retraining.toFixed(0)} s, measurement ${seconds.measurement.toFixed(0)} s) at ${from}`;
}

const pct = (n: number | undefined): string =>
  n === undefined || Number.isNaN(n) ? '—' : n.toFixed(2);

export function printReceipt(receipt: ForgetReceipt): void {
  const { request, plan, metrics, timings } = receipt;
  console.log(
    `forgot class ${request.className} (${request.method}, ${receipt.mode}) — request ${receipt.requestId}`,
  );
  console.log(
    `plan: activations per expert ${plan.activations.map((n, e) => `e${e}=${n}`).join(' ')}; ` +
      `rule ${plan.rule} → experts ${plan.experts.join(', ')} (coverage ${(plan.coverage * 100).toFixed(1)}%)`,
  );
  if (plan.expertCollateral) {
    console.log(
      `the retrained experts carry ${plan.collateral.toFixed(1)}% of the other classes' routing (${plan.experts.map((e, i) => `e${e} ${plan.expertCollateral[i]!.toFixed(1)}%`).join(', ')})`,
    );
  }
  console.log(`changed: ${receipt.partsChanged.join(', ') || 'no weights'}`);
  const row = (name: string, m: ForgetMetrics): string[] => [
    name,
    pct(m.ua),
    pct(m.ra),
    pct(m.ta),
    pct(m.forgottenClassTestAccuracy),
    pct(m.miaEfficacy),
    pct(m.featureProbe),
    pct(m.unmasked.ua),
    pct(m.unmasked.forgottenClassTestAccuracy),
    pct(m.unmasked.miaEfficacy),
  ];
  console.log(
    table([FORGET_METRICS_HEADER, row('before', metrics.before), row('after', metrics.after)]),
  );
  const on = metrics.after.measuredOn;
  if (on) {
    console.log(
      `measured on ${on.trainForgotten} forgotten and ${on.trainRetained} of ${on.trainRetainedOf} retained training samples, ${on.test} test samples (${on.mode})`,
    );
  }
  console.log(
    `time: forget ${timings.forgetSeconds.toFixed(1)} s, plan ${timings.planSeconds.toFixed(1)} s, ` +
      `measure ${timings.measureSeconds.toFixed(1)} s, total ${timings.totalSeconds.toFixed(1)} s`,
  );
  console.log(
    `receipt stored; manifest revision ${receipt.manifest.before} → ${receipt.manifest.after}`,
  );
}

/** A dry run: what a forget would retrain, what that disturbs, and what it should cost. */
function printPreview(preview: ForgetPreview): void {
  const { plan, estimate, request } = preview;
  console.log(
    `dry run: forgetting class ${plan.className} (${request.method}) on manifest revision ${preview.manifestRevision} would retrain ` +
      (request.method === 'targeted'
        ? `experts ${plan.experts.map((e) => `e${e}`).join(', ')} + router (${plan.rule}, coverage ${(plan.coverage * 100).toFixed(1)}%)`
        : `${estimate.expertsRetrained} experts`),
  );
  console.log(
    table([
      ['expert', 'class slots', "other classes' slots carried"],
      ...plan.experts.map((e, i) => [
        `e${e}`,
        String(plan.activations[e]),
        `${plan.expertCollateral[i]!.toFixed(1)}%`,
      ]),
      ['together', '', `${plan.collateral.toFixed(1)}%`],
    ]),
  );
  console.log(
    `work: ${estimate.trainingSamples} samples × ${estimate.epochs} epochs × ${estimate.expertsRetrained} experts; ` +
      `measurement ${estimate.measuredSamples} samples after, ${estimate.measuredSamples - estimate.measuredBeforeReused} before (the store holds the rest)`,
  );
  console.log(estimateLine(estimate));
  console.log('nothing was changed');
}

/** An exact (sisa) forget: what was replayed, from which checkpoint, and what it cost. */
export function printSisaReceipt(receipt: SisaReceipt): void {
  const of = ofSubjects(receipt.request.subjects);
  console.log(
    `receipt ${receipt.requestId}: ${counted(receipt.request.sampleIds.length, 'sample')}${of} forgotten exactly (sisa replay), manifest revision ${receipt.manifest.before} → ${receipt.manifest.after}`,
  );
  console.log(
    table([
      ['shard', 'removed', 'slices replayed', 'restored from', 'new last checkpoint'],
      ...receipt.sisa.shards.map((s) => [
        String(s.shard),
        String(s.samplesRemoved),
        s.slicesReplayed.join(', '),
        s.restoredCheckpointSha256 === 'initial'
          ? 'initial weights'
          : s.restoredCheckpointSha256.slice(0, 12),
        (s.checkpointSha256After.at(-1) ?? '').slice(0, 12),
      ]),
    ]),
  );
  const t = receipt.timings;
  console.log(
    `replay ${t.replaySeconds.toFixed(1)} s, router ${t.routerSeconds.toFixed(1)} s, total ${t.totalSeconds.toFixed(1)} s; ${receipt.checkpointsDeleted} checkpoints holding the samples deleted (check with: npx lethe verify --request-id ${receipt.requestId})`,
  );
}
