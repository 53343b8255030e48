import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from './dataset';

const RECORD = 3073;

function records(ds: Dataset, from: number, to: number): Buffer {
  if (ds.height !== 32 || ds.width !== 32 || ds.channels !== 3) {
    throw new Error(
      `CIFAR-10 records hold 32x32x3 images, got ${ds.height}x${ds.width}x${ds.channels}`,
    );
  }
  const out = Buffer.alloc((to - from) * RECORD);
  for (let i = from; i < to; i++) {
    const rec = out.subarray((i - from) * RECORD, (i - from + 1) * RECORD);
    rec[0] = ds.labels[i]!;
    // Records hold the R, G and B planes one after another; datasets hold interleaved HWC.
    for (let p = 0; p < 1024; p++) {
      for (let c = 0; c < 3; c++) rec[1 + c * 1024 + p] = ds.images[(i * 1024 + p) * 3 + c]!;
    }
  }
  return out;
}

/**
 * Writes a train and a test split in the CIFAR-10 binary layout (`data_batch_1..5.bin`,
 * `test_batch.bin`, `batches.meta.txt`) under `dir/cifar-10-batches-bin`, which readCifar10
 * and every `cifar10:DIR` spec read. Returns that directory. Used to hand generated data to
 * workers in other processes, exactly as real CIFAR-10 is handed to them.
 */
export function writeCifar10(dir: string, splits: { train: Dataset; test: Dataset }): string {
  const root = join(dir, 'cifar-10-batches-bin');
  const staging = `${root}.tmp-${process.pid}`;
  mkdirSync(staging, { recursive: true });
  const { train, test } = splits;
  const per = Math.ceil(train.size / 5);
  for (let b = 0; b < 5; b++) {
    writeFileSync(
      join(staging, `data_batch_${b + 1}.bin`),
      records(train, Math.min(train.size, b * per), Math.min(train.size, (b + 1) * per)),
    );
  }
  writeFileSync(join(staging, 'test_batch.bin'), records(test, 0, test.size));
  writeFileSync(join(staging, 'batches.meta.txt'), `${train.classes.join('\n')}\n\n`);
  renameSync(staging, root);
  return root;
}
