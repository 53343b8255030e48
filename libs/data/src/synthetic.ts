import type { Dataset, Split } from './dataset';
import { identityIndices } from './dataset';
import { createRng, deriveSeed, type Rng } from './rng';

/** The shapes of the synthetic "shapes" dataset, one class each, in label order. */
export const SYNTHETIC_CLASSES = [
  'square',
  'disc',
  'cross',
  'h-stripes',
  'v-stripes',
  'ring',
  'diagonal',
  'checker',
] as const;

export interface SyntheticOptions {
  /** Number of classes, 2 to 8 (the first N shapes). Default 6. */
  classes?: number;
  perClass: number;
  split: Split;
  seed?: number;
  /** Image side; default 32. */
  size?: number;
  /** Pixel noise amplitude 0..255; default 40. */
  noise?: number;
}

/**
 * A procedurally drawn image dataset — a coloured shape on a noisy background, the class being
 * the shape — for tests and the offline demo: it needs no download, is the same on every
 * machine, and is hard enough that an untrained model is at chance but a tiny CNN learns it in
 * seconds. Train and test splits draw from independent streams.
 */
export function makeSyntheticDataset(options: SyntheticOptions): Dataset {
  const classes = options.classes ?? 6;
  if (!Number.isInteger(classes) || classes < 2 || classes > SYNTHETIC_CLASSES.length) {
    throw new RangeError(
      `synthetic classes must be 2..${SYNTHETIC_CLASSES.length}, got ${classes}`,
    );
  }
  const size = options.size ?? 32;
  const noise = options.noise ?? 40;
  const count = classes * options.perClass;
  const images = new Uint8Array(count * size * size * 3);
  const labels = new Int32Array(count);
  const rng = createRng(deriveSeed(options.seed ?? 0, 'synthetic', options.split));
  for (let i = 0; i < count; i++) {
    // Interleave classes so any prefix is balanced.
    const label = i % classes;
    labels[i] = label;
    drawSample(
      images.subarray(i * size * size * 3, (i + 1) * size * size * 3),
      size,
      label,
      noise,
      rng,
    );
  }
  return {
    name: 'shapes',
    split: options.split,
    classes: SYNTHETIC_CLASSES.slice(0, classes).map(String),
    height: size,
    width: size,
    channels: 3,
    size: count,
    images,
    labels,
    indices: identityIndices(count),
    source: `synthetic:shapes?classes=${classes}&perClass=${options.perClass}&seed=${options.seed ?? 0}`,
  };
}

function drawSample(out: Uint8Array, size: number, label: number, noise: number, rng: Rng): void {
  const background = [rng.int(120), rng.int(120), rng.int(120)];
  // Shape colour is random too, so the class must be read from geometry, not colour.
  const colour = [80 + rng.int(176), 80 + rng.int(176), 80 + rng.int(176)];
  const half = size / 2;
  const cx = half + (rng.next() - 0.5) * size * 0.3;
  const cy = half + (rng.next() - 0.5) * size * 0.3;
  const r = size * (0.22 + rng.next() * 0.12);
  const period = 3 + rng.int(3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = x - cx;
      const dy = y - cy;
      const inside = Math.abs(dx) <= r && Math.abs(dy) <= r;
      const d = Math.hypot(dx, dy);
      let on: boolean;
      switch (label) {
        case 0:
          on = inside;
          break;
        case 1:
          on = d <= r;
          break;
        case 2:
          on = inside && (Math.abs(dx) <= r / 4 || Math.abs(dy) <= r / 4);
          break;
        case 3:
          on = inside && Math.floor((y - cy + r) / period) % 2 === 0;
          break;
        case 4:
          on = inside && Math.floor((x - cx + r) / period) % 2 === 0;
          break;
        case 5:
          on = d <= r && d >= r * 0.6;
          break;
        case 6:
          on = inside && Math.abs(dx - dy) <= r / 4;
          break;
        default:
          on =
            inside &&
            (Math.floor((x - cx + r) / period) + Math.floor((y - cy + r) / period)) % 2 === 0;
      }
      const base = on ? colour : background;
      const p = (y * size + x) * 3;
      for (let c = 0; c < 3; c++) {
        const v = base[c]! + (rng.next() - 0.5) * noise;
        out[p + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
}
