import { rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { makeSyntheticDataset } from '@lethe/data';
import { LocalDirStore } from '@lethe/store';
import { forgetClass } from '@lethe/unlearning';
import { runTrainJob } from '../jobs/train-job';
import { startEngine } from '../terminal/engine';
import { action } from '../terminal/errors';
import { positiveInt } from '../terminal/option-parsers';
import { stepProgress } from '../terminal/progress';
import { printEvaluation } from './eval.command';
import { printReceipt } from './forget.command';

interface DemoFlags {
  store: string;
  epochs: number;
  perClass: number;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('a short offline demonstration on a generated dataset, embedded store, no servers')
    .option('--store <dir>', 'store directory (emptied first)', '.lethe/demo')
    .option('--epochs <N>', 'training epochs', positiveInt, 4)
    .option('--per-class <N>', 'training images per class', positiveInt, 400)
    .action(
      action(async (flags: DemoFlags) => {
        await startEngine();
        await rm(flags.store, { recursive: true, force: true });
        const store = new LocalDirStore(flags.store);
        const train = makeSyntheticDataset({ perClass: flags.perClass, split: 'train', seed: 1 });
        const test = makeSyntheticDataset({ perClass: 100, split: 'test', seed: 1 });
        console.log(
          `Lethe demo: ${train.classes.length} classes of generated shapes (${train.classes.join(', ')}), ` +
            `${train.size} training and ${test.size} test images; store ${store.describe()}`,
        );
        const progress = stepProgress('train', 5);
        const result = await runTrainJob({
          data: { train, test },
          store,
          preset: 'tiny',
          experts: 4,
          topK: 2,
          epochs: flags.epochs,
          batchSize: 64,
          learningRate: 0.01,
          weightDecay: 0.0005,
          schedule: 'one-cycle',
          seed: 1,
          augment: false,
          // The tiny router collapsed onto two experts at 0.1 on these shapes; at 0.5 routing
          // follows the classes, which is what makes targeted forgetting visible.
          balanceWeight: 0.5,
          routerNoise: 1,
          onStatus: (m) => process.stderr.write(`${m}\n`),
          onStep: progress.onStep,
        });
        progress.stop();
        console.log(
          `\ntrained in ${result.seconds.toFixed(1)} s on the ${result.engine.engine} engine`,
        );
        if (result.test) printEvaluation(result.test, result.classes);
        console.log(
          `\nstored: manifest revision ${result.manifestRevision} in ${store.describe()}`,
        );

        const forgotten = train.classes[1]!;
        console.log(
          `\nforgetting class "${forgotten}": only the experts that saw it, plus the router`,
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
            class: forgotten,
            requestId: 'demo-forget',
            epochs: 3,
            learningRate: 0.003,
            batchSize: 64,
          },
        );
        forgetProgress.stop();
        printReceipt(receipt);
        console.log(
          `\nnext: lethe receipts --store ${flags.store} --id demo-forget, or train on CIFAR-10 (see README).`,
        );
      }),
    );
}
