import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Dataset, type Split, identityIndices } from './dataset';
import { DataError, errMessage } from './errors';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const PIXEL_BYTES = 3 * PLANE;
export const CIFAR10_RECORD_BYTES = 1 + PIXEL_BYTES;
export const CIFAR100_RECORD_BYTES = 2 + PIXEL_BYTES;

export const CIFAR10_FOLDER = 'cifar-10-batches-bin';
export const CIFAR100_FOLDER = 'cifar-100-binary';

export const CIFAR10_TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR10_TEST_FILES = ['test_batch.bin'];

/** Records in a full file of the official archives: every CIFAR-10 batch, CIFAR-100's test.bin. */
export const CIFAR_BATCH_RECORDS = 10_000;
/** Records in CIFAR-100's train.bin. */
export const CIFAR100_TRAIN_RECORDS = 50_000;

export interface CifarReadOptions {
  /**
   * Told, once per file, about a batch file holding fewer records than the official one: a
   * subset or a copy cut short at a record boundary. Small files stay readable (test fixtures).
   */
  onWarning?: (message: string) => void;
}

export interface Cifar100Options extends CifarReadOptions {
  /** Which label set becomes `labels`/`classes`; both are kept. Default `fine`. */
  label?: 'fine' | 'coarse';
}

/**
 * Reads the CIFAR-10 binary layout from `dir/cifar-10-batches-bin/` or `dir` itself.
 * Train concatenates data_batch_1..5 in order, so indices match the official ordering.
 */
export async function readCifar10(
  dir: string,
  split: Split,
  options: CifarReadOptions = {},
): Promise<Dataset> {
  const root = await resolveFolder(dir, CIFAR10_FOLDER, 'batches.meta.txt');
  const classes = await readNames(join(root, 'batches.meta.txt'));
  const layout = (names: string[]): BatchFile[] =>
    names.map((f) => ({ file: join(root, f), records: CIFAR_BATCH_RECORDS }));
  const files = { train: layout(CIFAR10_TRAIN_FILES), test: layout(CIFAR10_TEST_FILES) };
  await checkLayout([...files.train, ...files.test], CIFAR10_RECORD_BYTES, options.onWarning);
  const { images, labels } = await readRecords(files[split], 1, [classes.length]);
  return {
    name: 'cifar10',
    split,
    classes,
    height: SIDE,
    width: SIDE,
    channels: 3,
    size: labels[0]!.length,
    images,
    labels: labels[0]!,
    indices: identityIndices(labels[0]!.length),
    source: root,
  };
}

/**
 * Reads the CIFAR-100 binary layout from `dir/cifar-100-binary/` or `dir` itself. The name stays
 * `cifar100` for either label set: the samples, and so their ids, are the same.
 */
export async function readCifar100(
  dir: string,
  split: Split,
  options: Cifar100Options = {},
): Promise<Dataset> {
  const root = await resolveFolder(dir, CIFAR100_FOLDER, 'fine_label_names.txt');
  const fineClasses = await readNames(join(root, 'fine_label_names.txt'));
  const coarseClasses = await readNames(join(root, 'coarse_label_names.txt'));
  const files = {
    train: { file: join(root, 'train.bin'), records: CIFAR100_TRAIN_RECORDS },
    test: { file: join(root, 'test.bin'), records: CIFAR_BATCH_RECORDS },
  };
  await checkLayout([files.train, files.test], CIFAR100_RECORD_BYTES, options.onWarning);
  // The record starts with the coarse byte, then the fine byte.
  const { images, labels } = await readRecords([files[split]], 2, [
    coarseClasses.length,
    fineClasses.length,
  ]);
  const [coarse, fine] = labels as [Int32Array, Int32Array];
  const useCoarse = options.label === 'coarse';
  return {
    name: 'cifar100',
    split,
    classes: useCoarse ? coarseClasses : fineClasses,
    height: SIDE,
    width: SIDE,
    channels: 3,
    size: fine.length,
    images,
    labels: useCoarse ? coarse : fine,
    coarseLabels: coarse,
    coarseClasses,
    indices: identityIndices(fine.length),
    source: root,
  };
}

/** Prefers the archive's own folder name under `dir`, so both `DIR` and `DIR/<folder>` work. */
async function resolveFolder(dir: string, folder: string, probe: string): Promise<string> {
  const nested = join(dir, folder);
  if (await isDirectory(nested)) return nested;
  if (await isDirectory(dir)) return dir;
  throw new DataError(dir, `missing directory (expected ${folder}/ or a folder holding ${probe})`);
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** One class name per line; blank lines (the official files end with some) are ignored. */
async function readNames(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DataError(file, `missing or unreadable label-names file (${errMessage(err)})`, {
      cause: err,
    });
  }
  const names = text
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) throw new DataError(file, 'label-names file lists no classes');
  return names;
}

/** A batch file of a layout and the records the official archive has in it. */
interface BatchFile {
  file: string;
  records: number;
}

/** Records in a batch file: fails on a missing, empty or partial-record file. */
async function countRecords(file: string, recordBytes: number): Promise<number> {
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (err) {
    throw new DataError(file, `missing data file (${errMessage(err)})`, { cause: err });
  }
  if (size === 0) throw new DataError(file, 'empty data file');
  if (size % recordBytes !== 0) {
    throw new DataError(
      file,
      `truncated or corrupt: ${size} bytes is not a multiple of the ${recordBytes}-byte record size`,
    );
  }
  return size / recordBytes;
}

/**
 * Checks every batch file of a layout, both splits, whichever one is read: a dataset with a
 * broken training file is broken for evaluation too. Files with fewer records than the official
 * ones are reported to `onWarning`.
 */
async function checkLayout(
  files: BatchFile[],
  recordBytes: number,
  onWarning: ((message: string) => void) | undefined,
): Promise<void> {
  for (const { file, records } of files) {
    const count = await countRecords(file, recordBytes);
    if (count < records) {
      onWarning?.(
        `${file}: ${count} records, fewer than the ${records} of the official file (a subset, or a copy cut short?)`,
      );
    }
  }
}

/**
 * Reads fixed-size records (label bytes then R, G, B planes) from several files into one NHWC
 * buffer. All sizes are checked before anything is read, so a bad last file fails fast.
 */
async function readRecords(
  files: BatchFile[],
  labelBytes: number,
  labelLimits: number[],
): Promise<{ images: Uint8Array; labels: Int32Array[] }> {
  const recordBytes = labelBytes + PIXEL_BYTES;
  const counts: number[] = [];
  for (const { file } of files) counts.push(await countRecords(file, recordBytes));
  const total = counts.reduce((a, b) => a + b, 0);
  const images = new Uint8Array(total * PIXEL_BYTES);
  const labels = labelLimits.map(() => new Int32Array(total));
  let n = 0;
  for (let f = 0; f < files.length; f++) {
    const { file } = files[f]!;
    const buf = await readFile(file);
    if (buf.length !== counts[f]! * recordBytes) {
      throw new DataError(file, 'file changed size while being read');
    }
    for (let r = 0; r < counts[f]!; r++, n++) {
      const rec = r * recordBytes;
      for (let k = 0; k < labelBytes; k++) {
        const label = buf[rec + k]!;
        if (label >= labelLimits[k]!) {
          throw new DataError(
            file,
            `label ${label} out of range 0..${labelLimits[k]! - 1} in record ${r}`,
          );
        }
        labels[k]![n] = label;
      }
      const src = rec + labelBytes;
      let dst = n * PIXEL_BYTES;
      for (let p = 0; p < PLANE; p++, dst += 3) {
        images[dst] = buf[src + p]!;
        images[dst + 1] = buf[src + PLANE + p]!;
        images[dst + 2] = buf[src + 2 * PLANE + p]!;
      }
    }
  }
  return { images, labels };
}
