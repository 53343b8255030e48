import { describe, expect, it } from 'vitest';
import { COORDINATOR_DEFAULTS, loadCoordinatorConfig } from '../src/config/coordinator-config';

describe('loadCoordinatorConfig', () => {
  it('takes defaults, then environment, then flags', () => {
    expect(loadCoordinatorConfig([], {})).toEqual(COORDINATOR_DEFAULTS);
    const config = loadCoordinatorConfig(['--port', '9000'], {
      LETHE_PORT: '8000',
      LETHE_STORE: '/data/store',
    });
    expect(config).toMatchObject({ port: 9000, store: '/data/store' });
  });

  it('names the key of a bad value in one line', () => {
    expect(() => loadCoordinatorConfig(['--port', 'http'], {})).toThrow(
      /^invalid port \(--port \/ LETHE_PORT\)/,
    );
    expect(() => loadCoordinatorConfig([], { LETHE_HEARTBEAT_INTERVAL_MS: '10' })).toThrow(
      /heartbeatIntervalMs.*LETHE_HEARTBEAT_INTERVAL_MS/,
    );
    expect(() => loadCoordinatorConfig(['--bogus', '1'], {})).toThrow(/unknown option/);
  });
});
