/**
 * Limited-memory BFGS for smooth convex objectives. Written here rather than pulled from npm
 * because the objective is evaluated in one fused pass over a large Float32 feature matrix that
 * the caller owns, and the packages we looked at want their own matrix types (copies of 50 000 ×
 * 300 values) or minimise by fixed-step gradient descent.
 */

/** Writes the gradient at x into grad and returns the objective's value. */
export type ValueAndGradient = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  maxIterations: number;
  /** Stop when max |gradient| falls to this. */
  gradientTolerance: number;
  /** Stop when an iteration lowers the value by less than this, relative to max(|f|, 1). */
  valueTolerance: number;
  /** Correction pairs kept. */
  memory: number;
}

export interface MinimizeResult {
  x: Float64Array;
  value: number;
  iterations: number;
  converged: boolean;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function normInf(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function minimizeLbfgs(
  fg: ValueAndGradient,
  x0: Float64Array,
  opts: LbfgsOptions,
): MinimizeResult {
  const n = x0.length;
  let x = Float64Array.from(x0);
  let g = new Float64Array(n);
  let f = fg(x, g);
  let xNew = new Float64Array(n);
  let gNew = new Float64Array(n);
  const d = new Float64Array(n);
  const sHist: Float64Array[] = [];
  const yHist: Float64Array[] = [];
  const rho: number[] = [];
  const alpha = new Float64Array(opts.memory);
  let iterations = 0;
  let converged = false;

  while (iterations < opts.maxIterations) {
    if (normInf(g) <= opts.gradientTolerance) {
      converged = true;
      break;
    }
    iterations++;

    // Two-loop recursion: d = −H·g with H the L-BFGS inverse-Hessian estimate.
    d.set(g);
    const m = sHist.length;
    for (let i = m - 1; i >= 0; i--) {
      alpha[i] = rho[i]! * dot(sHist[i]!, d);
      const y = yHist[i]!;
      for (let j = 0; j < n; j++) d[j] -= alpha[i]! * y[j]!;
    }
    // Before any curvature is known, a unit-length first step avoids a wild jump on a steep start.
    const gamma =
      m > 0
        ? dot(sHist[m - 1]!, yHist[m - 1]!) / dot(yHist[m - 1]!, yHist[m - 1]!)
        : 1 / Math.max(1, Math.sqrt(dot(g, g)));
    for (let j = 0; j < n; j++) d[j] *= gamma;
    for (let i = 0; i < m; i++) {
      const beta = rho[i]! * dot(yHist[i]!, d);
      const s = sHist[i]!;
      for (let j = 0; j < n; j++) d[j] += s[j]! * (alpha[i]! - beta);
    }
    for (let j = 0; j < n; j++) d[j] = -d[j]!;
    let slope = dot(d, g);
    if (!(slope < 0)) {
      // Rounding can make the estimate useless; fall back to steepest descent and start over.
      sHist.length = yHist.length = rho.length = 0;
      const scale = 1 / Math.max(1, Math.sqrt(dot(g, g)));
      for (let j = 0; j < n; j++) d[j] = -g[j]! * scale;
      slope = dot(d, g);
    }

    // Backtracking (Armijo). The objectives here are convex, so a full step is usually taken.
    let step = 1;
    let fNew = Number.NaN;
    let accepted = false;
    for (let tries = 0; tries < 50; tries++) {
      for (let j = 0; j < n; j++) xNew[j] = x[j]! + step * d[j]!;
      fNew = fg(xNew, gNew);
      if (Number.isFinite(fNew) && fNew <= f + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    // No decrease along a descent direction: we are at the optimum to machine precision.
    if (!accepted) {
      converged = true;
      break;
    }

    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      s[j] = xNew[j]! - x[j]!;
      y[j] = gNew[j]! - g[j]!;
    }
    const sy = dot(s, y);
    if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(y, y))) {
      if (sHist.length === opts.memory) {
        sHist.shift();
        yHist.shift();
        rho.shift();
      }
      sHist.push(s);
      yHist.push(y);
      rho.push(1 / sy);
    }

    const decrease = f - fNew;
    [x, xNew] = [xNew, x];
    [g, gNew] = [gNew, g];
    f = fNew;
    if (decrease <= opts.valueTolerance * Math.max(1, Math.abs(f))) {
      converged = true;
      break;
    }
  }
  return { x, value: f, iterations, converged };
}
