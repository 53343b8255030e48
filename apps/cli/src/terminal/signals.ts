/** Signals that stop a foreground command. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/**
 * Within this many ms a repeated signal is the same request: one Ctrl-C reaches the command both
 * from the terminal and forwarded by `npx` (and by the bin entry running the sources).
 */
export const REPEAT_WINDOW_MS = 1_000;

export interface StopSignals {
  /** Stop signals counted so far (a repeat within the window counts once). */
  readonly count: number;
  dispose(): void;
}

/**
 * Calls `first` on the first SIGINT/SIGTERM (stop gracefully) and `again` on each later one
 * (stop now), counting a signal repeated within REPEAT_WINDOW_MS once.
 */
export function onStopSignals(
  first: (signal: NodeJS.Signals) => void,
  again: (signal: NodeJS.Signals) => void,
  now: () => number = Date.now,
): StopSignals {
  let count = 0;
  let last: { signal: NodeJS.Signals; at: number } | undefined;
  const handler = (signal: NodeJS.Signals): void => {
    const at = now();
    if (last && last.signal === signal && at - last.at < REPEAT_WINDOW_MS) return;
    last = { signal, at };
    count++;
    if (count === 1) first(signal);
    else again(signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  return {
    get count() {
      return count;
    },
    dispose() {
      for (const signal of STOP_SIGNALS) process.off(signal, handler);
    },
  };
}
