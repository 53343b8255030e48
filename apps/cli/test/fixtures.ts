import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Dataset, makeSyntheticDataset } from '@lethe/data';

const CLI = resolve(__dirname, '..', 'src', 'main.ts');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from its TypeScript sources, as a user would run the built binary. */
export function lethe(args: string[], env: Record<string, string> = {}): CliRun {
  const run = spawnSync(
    process.execPath,
    ['--conditions=@lethe/source', '--import', 'tsx', CLI, ...args],
    {
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 300_000,
    },
  );
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Writes a generated dataset in the CIFAR-10 binary layout (1 label byte + R, G, B planes). */
export function writeCifar10(dir: string, perClassTrain: number, perClassTest: number): string {
  const root = join(dir, 'cifar-10-batches-bin');
  mkdirSync(root, { recursive: true });
  const train = makeSyntheticDataset({
    perClass: perClassTrain,
    split: 'train',
    seed: 5,
    classes: 4,
  });
  const test = makeSyntheticDataset({ perClass: perClassTest, split: 'test', seed: 5, classes: 4 });
  const records = (ds: Dataset, from: number, to: number): Buffer => {
    const out = Buffer.alloc((to - from) * 3073);
    for (let i = from; i < to; i++) {
      const rec = out.subarray((i - from) * 3073, (i - from + 1) * 3073);
      rec[0] = ds.labels[i]!;
      for (let p = 0; p < 1024; p++) {
        for (let c = 0; c < 3; c++) rec[1 + c * 1024 + p] = ds.images[(i * 1024 + p) * 3 + c]!;
      }
    }
    return out;
  };
  const per = Math.ceil(train.size / 5);
  for (let b = 0; b < 5; b++) {
    writeFileSync(
      join(root, `data_batch_${b + 1}.bin`),
      records(train, b * per, Math.min(train.size, (b + 1) * per)),
    );
  }
  writeFileSync(join(root, 'test_batch.bin'), records(test, 0, test.size));
  writeFileSync(join(root, 'batches.meta.txt'), `${train.classes.join('\n')}\n\n`);
  return root;
}
