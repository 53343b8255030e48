import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  COORDINATOR_DEFAULTS,
  ConfigError,
  loadCoordinatorConfig,
} from '../src/config/coordinator-config';

const dir = mkdtempSync(join(tmpdir(), 'lethe-coordinator-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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

  it('reads --config FILE (JSON) and LETHE_CONFIG, below the environment and flags', () => {
    const file = join(dir, 'coordinator.json');
    writeFileSync(
      file,
      JSON.stringify({
        port: 9100,
        store: '/data/store',
        heartbeatIntervalMs: 2_000,
        heartbeatTimeoutMs: 10_000,
        logLevel: 'debug',
      }),
    );
    expect(loadCoordinatorConfig(['--config', file], {})).toEqual({
      ...COORDINATOR_DEFAULTS,
      port: 9100,
      store: '/data/store',
      heartbeatIntervalMs: 2_000,
      heartbeatTimeoutMs: 10_000,
      logLevel: 'debug',
    });
    expect(
      loadCoordinatorConfig(['--port', '9300'], { LETHE_CONFIG: file, LETHE_LOG_LEVEL: 'warn' }),
    ).toMatchObject({ port: 9300, logLevel: 'warn', store: '/data/store' });

    // Cross-field checks see the merged values and name the key (and the file that set it).
    expect(() =>
      loadCoordinatorConfig(['--config', file], { LETHE_HEARTBEAT_INTERVAL_MS: '20000' }),
    ).toThrow(
      `invalid heartbeatTimeoutMs (--heartbeat-timeout-ms / LETHE_HEARTBEAT_TIMEOUT_MS / file ${file}): must exceed heartbeatIntervalMs (20000)`,
    );
    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ port: 1, maxExperts: 2 }));
    expect(() => loadCoordinatorConfig(['--config', unknown], {})).toThrow(ConfigError);
    expect(() => loadCoordinatorConfig(['--config', unknown], {})).toThrow(
      /unknown key "maxExperts"/,
    );
  });
});
