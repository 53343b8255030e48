import { MetricsError } from './errors';

/** A row-major matrix of per-sample features: `data[r * cols + c]`, `shape = [rows, cols]`. */
export interface FeatureMatrix {
  data: Float32Array | Float64Array;
  shape: readonly [number, number];
}

/**
 * Checks dims and that every value is finite: one NaN from an overflowed activation would turn
 * every fitted coefficient into NaN and every prediction into "non-member" without a word.
 */
export function checkFeatureMatrix(what: string, m: FeatureMatrix): [number, number] {
  const [rows, cols] = m.shape;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 1) {
    throw new MetricsError(`${what}: bad shape [${rows}, ${cols}]`);
  }
  if (m.data.length !== rows * cols) {
    throw new MetricsError(
      `${what}: data has ${m.data.length} values, shape [${rows}, ${cols}] needs ${rows * cols}`,
    );
  }
  const d = m.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i]!)) {
      throw new MetricsError(
        `${what}: value at row ${Math.floor(i / cols)}, column ${i % cols} is ${d[i]}`,
      );
    }
  }
  return [rows, cols];
}
