import { join, relative } from 'node:path';
import { LocalDirStore } from '@lethe/store';
import { forgetClass } from '@lethe/unlearning';
import { printEvaluation } from '../commands/eval.command';
import { printReceipt } from '../commands/forget.command';
import { runTrainJob } from '../jobs/train-job';
import { startEngine } from '../terminal/engine';
import { CliError } from '../terminal/errors';
import { stepProgress } from '../terminal/progress';
import { finishDemoDir, freshDemoDir } from './demo-dir';
import { demoDatasets, type DemoOptions, FORGET, TRAINING } from './recipe';

/**
 * `lethe demo --local`: the whole demo in this process — train on the shapes, forget a class,
 * print the receipt — with the store in `<dir>/store`. No other process is started.
 */
export async function runLocalDemo(options: DemoOptions & { dir: string }): Promise<void> {
  await startEngine();
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
      `\ntrained in ${result.seconds.toFixed(1)} s on the ${result.engine.engine} engine`,
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
    const storeArg = relative(process.cwd(), join(dir, 'store')) || '.';
    console.log(
      `\nnext: lethe receipts --store ${storeArg} --id ${FORGET.requestId}, lethe demo without --local for the distributed run, or train on CIFAR-10 (see README).`,
    );
  } finally {
    await finishDemoDir(dir);
  }
}
