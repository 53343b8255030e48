import type { Dataset } from './dataset';

export type Rgb = [number, number, number];

export interface ChannelStats {
  mean: Rgb;
  std: Rgb;
}

/** CIFAR-10 train set, pixels scaled to [0,1]; population std over all pixels. */
export const CIFAR10_STATS: ChannelStats = {
  mean: [0.4914, 0.4822, 0.4465],
  std: [0.247, 0.2435, 0.2616],
};

/** CIFAR-100 train set, pixels scaled to [0,1]; population std over all pixels. */
export const CIFAR100_STATS: ChannelStats = {
  mean: [0.5071, 0.4865, 0.4409],
  std: [0.2673, 0.2564, 0.2762],
};

/**
 * Per-channel mean and population std on [0,1]-scaled pixels, over the whole dataset or the
 * given local positions. Counting byte values in a histogram makes it exact and allocation-free
 * however large the dataset is.
 */
export function channelStats(ds: Dataset, positions?: ArrayLike<number>): ChannelStats {
  const hist = new Float64Array(3 * 256);
  const img = ds.images;
  const sampleBytes = ds.height * ds.width * 3;
  const count = (start: number, end: number): void => {
    for (let i = start; i < end; i += 3) {
      hist[img[i]]++;
      hist[256 + img[i + 1]]++;
      hist[512 + img[i + 2]]++;
    }
  };
  if (positions === undefined) {
    count(0, ds.size * sampleBytes);
  } else {
    for (let k = 0; k < positions.length; k++) {
      const p = positions[k]!;
      count(p * sampleBytes, (p + 1) * sampleBytes);
    }
  }
  const mean: Rgb = [0, 0, 0];
  const std: Rgb = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let n = 0;
    let sum = 0;
    for (let v = 0; v < 256; v++) {
      const k = hist[c * 256 + v]!;
      n += k;
      sum += k * v;
    }
    if (n === 0) return { mean: [NaN, NaN, NaN], std: [NaN, NaN, NaN] };
    const m = sum / n;
    // Second pass around the mean avoids the cancellation of E[x²] − E[x]².
    let sq = 0;
    for (let v = 0; v < 256; v++) sq += hist[c * 256 + v]! * (v - m) * (v - m);
    mean[c] = m / 255;
    std[c] = Math.sqrt(sq / n) / 255;
  }
  return { mean, std };
}
