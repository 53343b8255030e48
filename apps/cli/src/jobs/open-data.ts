import { type Dataset, type ImageFolderOptions, openDataset, type Split } from '@lethe/data';

/** Warnings already printed: opening the train and the test split checks the same files. */
const warned = new Set<string>();

/**
 * openDataset, with the readers' warnings (a CIFAR batch shorter than the official one) on
 * stderr, each once per process.
 */
export function openData(
  spec: string,
  split: Split,
  options: ImageFolderOptions = {},
): Promise<Dataset> {
  return openDataset(spec, split, {
    ...options,
    onWarning: (message) => {
      if (warned.has(message)) return;
      warned.add(message);
      process.stderr.write(`warning: ${message}\n`);
    },
  });
}
