/** The forgetting metrics the demo reports, percent, as both receipt shapes name them. */
export interface DemoMetrics {
  ua: number;
  ra: number;
  ta: number;
  forgottenClassTestAccuracy: number;
  testAccuracy: number;
  miaEfficacy: number;
}

/** What `lethe demo --json` prints on stdout: the run, its metrics and the full receipt. */
export interface DemoResult {
  mode: 'local' | 'distributed';
  /** The TensorFlow.js backend the forget ran on, e.g. `wasm`. */
  engine: string;
  seconds: number;
  requestId: string;
  className: string;
  expertsRetrained: number[];
  metrics: { before: DemoMetrics; after: DemoMetrics };
  /** As `lethe receipts --json` prints it (the API's JSON mapping in the distributed demo). */
  receipt: unknown;
}

/** The demo's metrics out of a receipt's (local ForgetReceipt or proto ForgetMetrics). */
export function demoMetrics(m: DemoMetrics | undefined): DemoMetrics {
  return {
    ua: m?.ua ?? Number.NaN,
    ra: m?.ra ?? Number.NaN,
    ta: m?.ta ?? Number.NaN,
    forgottenClassTestAccuracy: m?.forgottenClassTestAccuracy ?? Number.NaN,
    testAccuracy: m?.testAccuracy ?? Number.NaN,
    miaEfficacy: m?.miaEfficacy ?? Number.NaN,
  };
}

/**
 * Runs `work` with console.log writing to stderr. The demo prints through the same printers as
 * `receipts`, `eval` and `forget`, which write with console.log; with --json, stdout must hold
 * nothing but the one JSON document, so the human text moves to stderr instead.
 */
export async function humanTextOnStderr<T>(work: () => Promise<T>): Promise<T> {
  const log = console.log;
  console.log = (...args: unknown[]): void => console.error(...args);
  try {
    return await work();
  } finally {
    console.log = log;
  }
}
