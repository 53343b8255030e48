import type { Command } from 'commander';
import { fetchDataset } from '@lethe/data';
import { action } from '../terminal/errors';
import { oneOf } from '../terminal/option-parsers';
import { Progress } from '../terminal/progress';

export function registerDataCommand(program: Command): void {
  const data = program.command('data').description('download datasets');
  data
    .command('fetch')
    .description('download an official CIFAR archive over HTTPS, check its MD5 and unpack it')
    .argument('<dataset>', 'cifar10 | cifar100', oneOf(['cifar10', 'cifar100'] as const))
    .option('--cache <dir>', 'cache directory', '.lethe/data')
    .action(
      action(async (name: 'cifar10' | 'cifar100', flags: { cache: string }) => {
        const mb = (n: number): string => (n / 2 ** 20).toFixed(1);
        const progress = new Progress(
          '{name} |{bar}| {received}/{size} MiB | ETA {eta_formatted}',
          (v) => `${v['name']} ${v['received']}/${v['size']} MiB`,
        );
        let started = false;
        const result = await fetchDataset(name, flags.cache, {
          onProgress: (received: number, total: number | undefined) => {
            const values = { name, received: mb(received), size: total ? mb(total) : '?' };
            if (!started) progress.start(total ?? received, values);
            started = true;
            progress.update(received, total ?? received, values);
          },
        });
        progress.stop();
        console.log(
          result.downloaded
            ? `${name} downloaded, MD5 verified and unpacked: use --data ${result.spec}`
            : `${name} already in the cache: use --data ${result.spec}`,
        );
      }),
    );
}
