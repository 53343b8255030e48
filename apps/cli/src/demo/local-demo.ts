import { join, relative } from 'node:path';
import { LocalDirStore } from '@lethe/store';
import { forgetClass } from '@lethe/unlearning';
import { printEvaluation } from '../commands/eval.command';
import { printReceipt } from '../commands/forget.command';
import { runTrainJob } from '../jobs/train-job';
import { engineSummary, WASM_NOTE } from '../terminal/engine';
import { CliError } from '../terminal/errors';
import { FORGET_METRICS_LEGEND, forgetSummary } from '../terminal/tables';
import { stepProgress } from '../terminal/progress';
import { finishDemoDir, freshDemoDir } from './demo-dir';
import { type DemoResult, demoMetrics } from './demo-result';
import { demoDatasets, type DemoOptions, FORGET, TRAINING } from './recipe';

/**
 * `lethe demo --local`: the whole demo in this process — train on the shapes, forget a class,
 * print the receipt — with the store in `<dir>/store`. No other process is started.
 */
export async function runLocalDemo(options: DemoOptions & { dir: string }): Promise<DemoResult> {
  const started = performance.now();
  const dir = await freshDemoDir(options.dir);
  try {
    const store = new LocalDirStore(join(dir, 'store'));
    const { train, test } = demoDatasets(options);
    if (!train.classes.includes(FORGET.className)) {
      throw new CliError(`the demo data has no class ${FORGET.className}`);
    }
    console.log(
      `Lethe demo (in-process): ${train.classes.length} classes of generated shapes (${train.classes.join(', ')}), ` +
        `${train.size} training and ${test.size} test images; store ${store.describe()} (replaced on each run)`,
    );
    const progress = stepProgress('train', 5);
    const result = await runTrainJob({
      data: { train, test },
      store,
      ...TRAINING,
      epochs: options.epochs,
      onStatus: (m) => process.stderr.write(`${m}\n`),
      onStep: progress.onStep,
    });
    progress.stop();
    console.log(
      `\ntrained in ${result.seconds.toFixed(1)} s on the ${engineSummary(result.engine)} engine`,
    );
    if (result.test) printEvaluation(result.test, result.classes);
    console.log(`\nstored: manifest revision ${result.manifestRevision} in ${store.describe()}`);

    console.log(
      `\nforgetting class "${FORGET.className}": only the experts that saw it, plus the router`,
    );
    const forgetProgress = stepProgress('forget', 5);
    const receipt = await forgetClass(
      {
        store,
        train,
        test,
        onStatus: (m) => process.stderr.write(`${m}\n`),
        onStep: forgetProgress.onStep,
      },
      {
        class: FORGET.className,
        requestId: FORGET.requestId,
        epochs: FORGET.epochs,
        learningRate: FORGET.learningRate,
        batchSize: FORGET.batchSize,
      },
    );
    forgetProgress.stop();
    printReceipt(receipt);
    console.log(FORGET_METRICS_LEGEND);
    console.log(
      `\ndemo finished: ${forgetSummary(FORGET.className, receipt.metrics.before, receipt.metrics.after)}, ` +
        `retrained ${receipt.expertsRetrained.map((e) => `e${e}`).join(', ')} + the router`,
    );
    if (result.engine.engine === 'wasm') console.log(WASM_NOTE);
    const storeArg = relative(process.cwd(), join(dir, 'store')) || '.';
    console.log(
      `\nnext: npx lethe receipts --store ${storeArg} --request-id ${FORGET.requestId}; npx lethe demo without --local for the distributed run; or train on CIFAR-10 (README).`,
    );
    return {
      mode: 'local',
      engine: result.engine.engine,
      seconds: (performance.now() - started) / 1000,
      requestId: receipt.requestId,
      className: FORGET.className,
      expertsRetrained: receipt.expertsRetrained,
      metrics: {
        before: demoMetrics(receipt.metrics.before),
        after: demoMetrics(receipt.metrics.after),
      },
      receipt,
    };
  } finally {
    await finishDemoDir(dir);
  }
}
