import { describe, expect, it } from 'vitest';
import { onStopSignals, REPEAT_WINDOW_MS } from '../src/terminal/signals';

describe('onStopSignals', () => {
  it('counts a Ctrl-C that arrives twice at once (terminal and npx) as one, a later one as again', () => {
    const listeners = process.listenerCount('SIGINT');
    let now = 1_000;
    const seen: string[] = [];
    const signals = onStopSignals(
      (signal) => seen.push(`first ${signal}`),
      (signal) => seen.push(`again ${signal}`),
      () => now,
    );
    try {
      process.emit('SIGINT', 'SIGINT');
      now += 5;
      process.emit('SIGINT', 'SIGINT'); // the forwarded copy of the same Ctrl-C
      expect(seen).toEqual(['first SIGINT']);
      expect(signals.count).toBe(1);
      now += REPEAT_WINDOW_MS;
      process.emit('SIGINT', 'SIGINT');
      now += 1;
      process.emit('SIGTERM', 'SIGTERM'); // another signal is another request
      expect(seen).toEqual(['first SIGINT', 'again SIGINT', 'again SIGTERM']);
      expect(signals.count).toBe(3);
    } finally {
      signals.dispose();
    }
    expect(process.listenerCount('SIGINT')).toBe(listeners);
  });
});
