import type { ChannelStats } from '@lethe/data';

/** An image as raw 8-bit HWC pixels, as ImageTensor carries it. */
export interface RawImage {
  data: Uint8Array;
  height: number;
  width: number;
  channels: number;
}

/** Per channel, the normalised float of each byte value: (v/255 − mean) / std. */
export function normalisationTable(stats: ChannelStats): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - stats.mean[c]!) / stats.std[c]!;
  }
  return lut;
}

/**
 * The images as one NHWC float batch, scaled to [0, 1] and normalised exactly as libs/data's
 * gatherBatch does for dataset samples (same table), so Predict and Forward see equal inputs for
 * equal pixels. The images must already have been checked to be of one size with 3 channels.
 */
export function normaliseImages(images: readonly RawImage[], stats: ChannelStats): Float32Array {
  const lut = normalisationTable(stats);
  const per = images.length === 0 ? 0 : images[0]!.data.length;
  const out = new Float32Array(images.length * per);
  images.forEach((image, i) => {
    const { data } = image;
    let dst = i * per;
    for (let k = 0; k < per; k += 3, dst += 3) {
      out[dst] = lut[data[k]!]!;
      out[dst + 1] = lut[256 + data[k + 1]!]!;
      out[dst + 2] = lut[512 + data[k + 2]!]!;
    }
  });
  return out;
}

/** Index of the first NaN or infinite value, or -1. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) return i;
  }
  return -1;
}

/** Bytes of a typed array's memory, for hashing (little-endian on every supported host). */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}
