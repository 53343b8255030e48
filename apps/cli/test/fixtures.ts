import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { makeSyntheticDataset, writeCifar10 as writeDatasets } from '@lethe/data';

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

/** A generated 4-class "shapes" dataset in the CIFAR-10 binary layout; returns its directory. */
export function writeCifar10(dir: string, perClassTrain: number, perClassTest: number): string {
  const split = (perClass: number, name: 'train' | 'test') =>
    makeSyntheticDataset({ perClass, split: name, seed: 5, classes: 4 });
  return writeDatasets(dir, {
    train: split(perClassTrain, 'train'),
    test: split(perClassTest, 'test'),
  });
}
