/**
 * The forget window: sisa forget requests that arrive within `windowMs` of the first request of
 * a batch share one replay. One policy for every queue that batches sisa forgets — the
 * in-process SisaForgetQueue (and the benchmark that drives it) and the coordinator's job
 * queue — so they close batches at the same moments.
 */

/** The longest window accepted: a day. Longer would hold an erasure back past what we promise. */
export const MAX_FORGET_WINDOW_MS = 86_400_000;

/** Wall-clock time in milliseconds and one-shot timers; tests and the benchmark supply their own. */
export interface ForgetClock {
  now(): number;
  /** Runs `fn` once, `ms` from now; the returned function cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: ForgetClock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** `windowMs` checked: a finite whole number of milliseconds in 0..MAX_FORGET_WINDOW_MS. */
export function checkForgetWindow(windowMs: number): number {
  if (!(Number.isInteger(windowMs) && windowMs >= 0 && windowMs <= MAX_FORGET_WINDOW_MS)) {
    throw new RangeError(
      `the forget window must be a whole number of milliseconds in 0..${MAX_FORGET_WINDOW_MS} (a day), got ${windowMs}`,
    );
  }
  return windowMs;
}

/**
 * When the batch opened by a request that arrived at `openedAt` closes, and a timer for it. A
 * queue asks `wait(openedAt, run)` whenever it could start a batch: false means the window has
 * closed (start now); true means `run` is called when it closes (one timer at a time — a second
 * wait replaces the first).
 */
export class ForgetWindow {
  readonly windowMs: number;
  #cancel: (() => void) | undefined;

  constructor(
    windowMs: number,
    readonly clock: ForgetClock = systemClock,
  ) {
    this.windowMs = checkForgetWindow(windowMs);
  }

  closesAt(openedAt: number): number {
    return openedAt + this.windowMs;
  }

  /** Whether the batch opened at `openedAt` is still open; if so, `onClose` runs when it closes. */
  wait(openedAt: number, onClose: () => void): boolean {
    this.cancel();
    const left = this.closesAt(openedAt) - this.clock.now();
    if (left <= 0) return false;
    this.#cancel = this.clock.setTimer(() => {
      this.#cancel = undefined;
      onClose();
    }, left);
    return true;
  }

  /** Whether a timer is armed. */
  get waiting(): boolean {
    return this.#cancel !== undefined;
  }

  cancel(): void {
    this.#cancel?.();
    this.#cancel = undefined;
  }
}
