import { MetricsError } from './errors';
import { type FeatureMatrix, checkFeatureMatrix } from './feature-matrix';
import { minimizeLbfgs, normInf } from './lbfgs';
import { type Mask, checkPositive, checkSameLength, toBits } from './validate';

export type LogisticSolver = 'newton' | 'lbfgs';

export interface LogisticRegressionOptions {
  /**
   * L2 penalty λ/2·‖w‖² on the standardised coefficients (never the intercept), added to the
   * weighted mean log-loss. Small, so it only keeps separable problems finite. Default 1e-4.
   */
  l2?: number;
  /** Centre and scale each feature by its mean and standard deviation over the fitted rows. */
  standardize?: boolean;
  /** Per-row weights (indexed like the rows of x), multiplied into any class balancing. */
  sampleWeight?: ArrayLike<number>;
  /** Reweight so each class carries half the total weight (the rare class is not ignored). */
  balanced?: boolean;
  /**
   * 'newton' (IRLS: exact Hessian, a handful of iterations, cost ∝ D² per row) or 'lbfgs'
   * (gradient only, cost ∝ D per row). 'auto' picks Newton for at most 16 features.
   */
  solver?: LogisticSolver | 'auto';
  maxIterations?: number;
  /** Stop when max |gradient| of the objective falls to this. Default 1e-9 Newton, 1e-6 L-BFGS. */
  tolerance?: number;
  /** Fit on these rows of x only; the matrix is not copied. Default: all rows. */
  rows?: ArrayLike<number>;
}

export interface LogisticRegressionModel {
  /** Coefficients on the caller's feature scale: logit = bias + Σ weights[j]·x[j]. */
  weights: Float64Array;
  bias: number;
  /** The standardisation the model was fitted in; identity when `standardize` was false. */
  mean: Float64Array;
  scale: Float64Array;
  /** Coefficients on standardised features, comparable across features. */
  standardizedWeights: Float64Array;
  standardizedBias: number;
  solver: LogisticSolver;
  iterations: number;
  converged: boolean;
  /** Weighted mean log-loss plus the L2 term, at the solution. */
  objective: number;
}

const SOLVER_AUTO_MAX_FEATURES = 16;

/** log(1 + e^z) without overflow. */
function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

/**
 * The weighted, penalised log-loss over the chosen rows. Standardisation is applied on the fly
 * as (x − μ)·(w/σ), so a 50 000 × 300 Float32 matrix is read in place rather than copied.
 */
class Objective {
  private readonly v: Float64Array;
  private readonly gAcc: Float64Array;
  private readonly xt: Float64Array;

  constructor(
    private readonly x: Float32Array | Float64Array,
    private readonly d: number,
    private readonly rows: Int32Array,
    private readonly y: Uint8Array,
    /** Indexed by row, summing to 1 over `rows`. */
    private readonly weight: Float64Array,
    private readonly mean: Float64Array,
    private readonly invScale: Float64Array,
    private readonly l2: number,
  ) {
    this.v = new Float64Array(d);
    this.gAcc = new Float64Array(d);
    this.xt = new Float64Array(d);
  }

  /** theta = [bias, w₁…w_D]. Writes the gradient (and the upper triangle of the Hessian). */
  evaluate(theta: Float64Array, grad: Float64Array, hess?: Float64Array): number {
    const { x, d, rows, y, weight, mean, invScale, v, gAcc, xt } = this;
    const p1 = d + 1;
    const b = theta[0]!;
    for (let j = 0; j < d; j++) v[j] = theta[j + 1]! * invScale[j]!;
    gAcc.fill(0);
    if (hess) hess.fill(0);
    let loss = 0;
    let gb = 0;
    for (let k = 0; k < rows.length; k++) {
      const i = rows[k]!;
      const s = weight[i]!;
      if (s === 0) continue;
      const off = i * d;
      let z = b;
      for (let j = 0; j < d; j++) z += (x[off + j]! - mean[j]!) * v[j]!;
      const yi = y[i]!;
      loss += s * (softplus(z) - yi * z);
      const p = 1 / (1 + Math.exp(-z));
      const r = s * (p - yi);
      gb += r;
      for (let j = 0; j < d; j++) gAcc[j] += r * (x[off + j]! - mean[j]!);
      if (hess) {
        const w = s * p * (1 - p);
        for (let j = 0; j < d; j++) xt[j] = (x[off + j]! - mean[j]!) * invScale[j]!;
        hess[0] += w;
        for (let j = 0; j < d; j++) {
          const wj = w * xt[j]!;
          hess[j + 1] += wj;
          const rowOff = (j + 1) * p1 + 1;
          for (let l = j; l < d; l++) hess[rowOff + l] += wj * xt[l]!;
        }
      }
    }
    grad[0] = gb;
    let penalty = 0;
    for (let j = 0; j < d; j++) {
      const w = theta[j + 1]!;
      grad[j + 1] = gAcc[j]! * invScale[j]! + this.l2 * w;
      penalty += w * w;
    }
    if (hess) {
      for (let j = 1; j < p1; j++) {
        hess[j * p1 + j] += this.l2;
        for (let l = 0; l < j; l++) hess[j * p1 + l] = hess[l * p1 + j]!;
      }
    }
    return loss + 0.5 * this.l2 * penalty;
  }
}

/** Solves A·x = b for symmetric positive-definite A (n×n, row-major) in place of b. */
function choleskySolve(a: Float64Array, b: Float64Array, n: number): boolean {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      if (i === j) {
        if (!(s > 0)) return false;
        l[i * n + i] = Math.sqrt(s);
      } else {
        l[i * n + j] = s / l[j * n + j]!;
      }
    }
  }
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= l[i * n + k]! * b[k]!;
    b[i] = s / l[i * n + i]!;
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i]!;
    for (let k = i + 1; k < n; k++) s -= l[k * n + i]! * b[k]!;
    b[i] = s / l[i * n + i]!;
  }
  return true;
}

function newton(
  obj: Objective,
  p: number,
  maxIterations: number,
  tolerance: number,
): { theta: Float64Array; value: number; iterations: number; converged: boolean } {
  let theta = new Float64Array(p);
  let next = new Float64Array(p);
  const grad = new Float64Array(p);
  const trialGrad = new Float64Array(p);
  const hess = new Float64Array(p * p);
  const step = new Float64Array(p);
  let value = obj.evaluate(theta, grad, hess);
  let iterations = 0;
  let converged = false;
  while (iterations < maxIterations) {
    if (normInf(grad) <= tolerance) {
      converged = true;
      break;
    }
    iterations++;
    // All-saturated predictions make the intercept's curvature vanish; a growing ridge keeps the
    // system solvable without changing the optimum.
    let solved = false;
    for (let jitter = 1e-12; jitter < 1 && !solved; jitter *= 100) {
      const h = Float64Array.from(hess);
      for (let j = 0; j < p; j++) h[j * p + j] += jitter;
      step.set(grad);
      solved = choleskySolve(h, step, p);
    }
    if (!solved) break;
    let slope = 0;
    for (let j = 0; j < p; j++) slope -= grad[j]! * step[j]!;
    let t = 1;
    let trial = Number.NaN;
    let accepted = false;
    for (let tries = 0; tries < 50; tries++) {
      for (let j = 0; j < p; j++) next[j] = theta[j]! - t * step[j]!;
      trial = obj.evaluate(next, trialGrad);
      if (Number.isFinite(trial) && trial <= value + 1e-4 * t * slope) {
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) {
      converged = true;
      break;
    }
    [theta, next] = [next, theta];
    const decrease = value - trial;
    value = obj.evaluate(theta, grad, hess);
    if (decrease <= 1e-15 * Math.max(1, Math.abs(value)) && normInf(grad) <= 1e3 * tolerance) {
      converged = true;
      break;
    }
  }
  return { theta, value, iterations, converged };
}

function rowList(what: string, rows: ArrayLike<number> | undefined, n: number): Int32Array {
  if (rows === undefined) return Int32Array.from({ length: n }, (_, i) => i);
  const out = new Int32Array(rows.length);
  for (let k = 0; k < rows.length; k++) {
    const r = rows[k]!;
    if (!Number.isInteger(r) || r < 0 || r >= n) {
      throw new MetricsError(`${what}[${k}] = ${r} is not a row in [0, ${n})`);
    }
    out[k] = r;
  }
  return out;
}

/**
 * Binary logistic regression, deterministic (no random initialisation or sampling). Throws
 * unless both classes have positive weight among the fitted rows.
 */
export function fitLogisticRegression(
  x: FeatureMatrix,
  y: Mask,
  options: LogisticRegressionOptions = {},
): LogisticRegressionModel {
  const [n, d] = checkFeatureMatrix('fitLogisticRegression x', x);
  if (y.length !== n) {
    throw new MetricsError(`fitLogisticRegression: ${y.length} targets for ${n} rows`);
  }
  const target = toBits('fitLogisticRegression y', y);
  const rows = rowList('fitLogisticRegression rows', options.rows, n);
  const l2 = options.l2 ?? 1e-4;
  checkPositive('l2', l2, true);
  const solver =
    options.solver === undefined || options.solver === 'auto'
      ? d <= SOLVER_AUTO_MAX_FEATURES
        ? 'newton'
        : 'lbfgs'
      : options.solver;
  const maxIterations = options.maxIterations ?? (solver === 'newton' ? 100 : 500);
  checkPositive('maxIterations', maxIterations);
  const tolerance = options.tolerance ?? (solver === 'newton' ? 1e-9 : 1e-6);
  checkPositive('tolerance', tolerance);

  const weight = new Float64Array(n);
  if (options.sampleWeight !== undefined) {
    checkSameLength('fitLogisticRegression sampleWeight/rows', options.sampleWeight, target);
  }
  const classTotal = [0, 0];
  for (const i of rows) {
    const w = options.sampleWeight === undefined ? 1 : options.sampleWeight[i]!;
    if (!Number.isFinite(w) || w < 0) {
      throw new MetricsError(`fitLogisticRegression sampleWeight[${i}] = ${w} is not ≥ 0`);
    }
    // A row listed twice counts twice, like a duplicated sample.
    weight[i] += w;
    classTotal[target[i]!] += w;
  }
  if (!(classTotal[0]! > 0) || !(classTotal[1]! > 0)) {
    throw new MetricsError(
      'fitLogisticRegression: needs rows of both classes (with positive weight)',
    );
  }
  const total = classTotal[0]! + classTotal[1]!;
  for (let i = 0; i < n; i++) {
    weight[i] = options.balanced ? weight[i]! / (2 * classTotal[target[i]!]!) : weight[i]! / total;
  }

  const mean = new Float64Array(d);
  const scale = new Float64Array(d).fill(1);
  if (options.standardize ?? true) standardization(x.data, d, rows, mean, scale);
  const invScale = scale.map((s) => 1 / s);

  const obj = new Objective(x.data, d, rows, target, weight, mean, invScale, l2);
  const p = d + 1;
  const fit =
    solver === 'newton'
      ? newton(obj, p, maxIterations, tolerance)
      : (() => {
          const r = minimizeLbfgs((t, g) => obj.evaluate(t, g), new Float64Array(p), {
            maxIterations,
            gradientTolerance: tolerance,
            valueTolerance: 1e-10,
            memory: 10,
          });
          return { theta: r.x, value: r.value, iterations: r.iterations, converged: r.converged };
        })();

  const standardizedWeights = fit.theta.slice(1);
  const weights = standardizedWeights.map((w, j) => w * invScale[j]!);
  let bias = fit.theta[0]!;
  for (let j = 0; j < d; j++) bias -= weights[j]! * mean[j]!;
  return {
    weights,
    bias,
    mean,
    scale,
    standardizedWeights,
    standardizedBias: fit.theta[0]!,
    solver,
    iterations: fit.iterations,
    converged: fit.converged,
    objective: fit.value,
  };
}

/** Unweighted mean and population standard deviation over the rows; constant columns keep 1. */
function standardization(
  x: Float32Array | Float64Array,
  d: number,
  rows: Int32Array,
  mean: Float64Array,
  scale: Float64Array,
): void {
  const sq = new Float64Array(d);
  for (const i of rows) for (let j = 0; j < d; j++) mean[j] += x[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j] /= rows.length;
  // Two passes rather than E[x²] − E[x]², which cancels badly for features far from zero.
  for (const i of rows) {
    for (let j = 0; j < d; j++) {
      const c = x[i * d + j]! - mean[j]!;
      sq[j] += c * c;
    }
  }
  for (let j = 0; j < d; j++) {
    const sd = Math.sqrt(sq[j]! / rows.length);
    scale[j] = sd > 1e-12 * Math.max(1, Math.abs(mean[j]!)) ? sd : 1;
  }
}

/** The logit (log-odds of class 1) for each row of x. */
export function decisionFunction(model: LogisticRegressionModel, x: FeatureMatrix): Float64Array {
  const [n, d] = checkFeatureMatrix('decisionFunction x', x);
  if (d !== model.weights.length) {
    throw new MetricsError(`decisionFunction: model has ${model.weights.length} features, x ${d}`);
  }
  const { mean, scale, standardizedWeights: w, standardizedBias: b } = model;
  const v = w.map((wj, j) => wj / scale[j]!);
  const out = new Float64Array(n);
  const data = x.data;
  for (let i = 0; i < n; i++) {
    let z = b;
    for (let j = 0; j < d; j++) z += (data[i * d + j]! - mean[j]!) * v[j]!;
    out[i] = z;
  }
  return out;
}

/** P(class 1) for each row of x. */
export function predictProbability(model: LogisticRegressionModel, x: FeatureMatrix): Float64Array {
  return decisionFunction(model, x).map((z) => 1 / (1 + Math.exp(-z)));
}

/** 1 where the logit is strictly positive (P > 0.5), as scikit-learn's predict does. */
export function predictLogistic(model: LogisticRegressionModel, x: FeatureMatrix): Uint8Array {
  return Uint8Array.from(decisionFunction(model, x), (z) => (z > 0 ? 1 : 0));
}
