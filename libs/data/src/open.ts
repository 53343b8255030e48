import { type CifarReadOptions, readCifar10, readCifar100 } from './cifar';
import type { Dataset, Split } from './dataset';
import { type ImageFolderOptions, readImageFolder } from './image-folder';

export const DATASET_SCHEMES = ['cifar10', 'cifar100', 'cifar100-coarse', 'folder'] as const;
export type DatasetScheme = (typeof DATASET_SCHEMES)[number];

export interface DatasetSpec {
  scheme: DatasetScheme;
  dir: string;
}

/** Splits `scheme:DIR`; throws naming the accepted schemes when the scheme is unknown. */
export function parseDatasetSpec(spec: string): DatasetSpec {
  const colon = spec.indexOf(':');
  const scheme = colon < 0 ? '' : spec.slice(0, colon);
  const dir = colon < 0 ? '' : spec.slice(colon + 1);
  if (!(DATASET_SCHEMES as readonly string[]).includes(scheme)) {
    throw new Error(
      `unknown dataset spec ${JSON.stringify(spec)}: expected one of ` +
        DATASET_SCHEMES.map((s) => `${s}:DIR`).join(', '),
    );
  }
  if (dir.length === 0) throw new Error(`dataset spec ${JSON.stringify(spec)} has no directory`);
  return { scheme: scheme as DatasetScheme, dir };
}

/** Opens `cifar10:DIR`, `cifar100:DIR`, `cifar100-coarse:DIR` or `folder:DIR`. */
export async function openDataset(
  spec: string,
  split: Split,
  options: ImageFolderOptions & CifarReadOptions = {},
): Promise<Dataset> {
  const { scheme, dir } = parseDatasetSpec(spec);
  const cifar = options.onWarning ? { onWarning: options.onWarning } : {};
  switch (scheme) {
    case 'cifar10':
      return readCifar10(dir, split, cifar);
    case 'cifar100':
      return readCifar100(dir, split, { ...cifar, label: 'fine' });
    case 'cifar100-coarse':
      return readCifar100(dir, split, { ...cifar, label: 'coarse' });
    case 'folder':
      return readImageFolder(dir, split, options);
  }
}
