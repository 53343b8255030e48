import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseWorkerConfig, redactStoreUrl } from '../src/config';

const dir = mkdtempSync(join(tmpdir(), 'lethe-worker-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('worker configuration', () => {
  it('has defaults', () => {
    expect(parseWorkerConfig([], {})).toEqual({
      host: '127.0.0.1',
      port: 0,
      metricsPort: 0,
      maxExperts: 8,
      graceMs: 10_000,
    });
  });

  it('reads flags, then the environment', () => {
    const env = {
      LETHE_COORDINATOR: 'coordinator:50051',
      LETHE_STORE: '/var/lib/lethe',
      LETHE_WORKER_PORT: '7000',
      LETHE_MAX_EXPERTS: '2',
    };
    expect(
      parseWorkerConfig(
        ['--port', '7001', '--host', '0.0.0.0', '--advertise', 'worker-1.svc:7001', '--name', 'w1'],
        env,
      ),
    ).toEqual({
      host: '0.0.0.0',
      port: 7001,
      metricsPort: 0,
      advertise: 'worker-1.svc:7001',
      coordinator: 'coordinator:50051',
      store: '/var/lib/lethe',
      name: 'w1',
      maxExperts: 2,
      graceMs: 10_000,
    });
  });

  it.each([
    [
      ['--port', '70000'],
      {},
      /^invalid port \(--port \/ LETHE_WORKER_PORT\): expected an integer 0\.\.65535, got "70000"$/,
    ],
    [
      ['--metrics-port', '70000'],
      {},
      /^invalid metricsPort \(--metrics-port \/ LETHE_METRICS_PORT\): expected an integer 0\.\.65535/,
    ],
    [
      [],
      { LETHE_METRICS_PORT: 'http' },
      /^invalid metricsPort \(--metrics-port \/ LETHE_METRICS_PORT\): expected an integer/,
    ],
    [
      [],
      { LETHE_WORKER_PORT: '-1' },
      /^invalid port \(--port \/ LETHE_WORKER_PORT\): expected an integer/,
    ],
    [
      ['--max-experts', '0'],
      {},
      /^invalid maxExperts \(--max-experts \/ LETHE_MAX_EXPERTS\): expected an integer 1\.\.1024/,
    ],
    [
      [],
      { LETHE_MAX_EXPERTS: 'many' },
      /^invalid maxExperts \(--max-experts \/ LETHE_MAX_EXPERTS\): .*, got "many"$/,
    ],
    [
      ['--coordinator', 'nohost'],
      {},
      /^invalid coordinator \(--coordinator \/ LETHE_COORDINATOR\): expected host:port/,
    ],
    [
      ['--advertise', 'h:0'],
      {},
      /^invalid advertise \(--advertise \/ LETHE_WORKER_ADVERTISE\): expected host:port with a port 1\.\.65535/,
    ],
    [['--host', 'a b'], {}, /^invalid host \(--host \/ LETHE_WORKER_HOST\): /],
    [['--name', '-x'], {}, /^invalid name \(--name \/ LETHE_WORKER_NAME\): /],
    [
      ['--store', 'ftp://x'],
      {},
      /^invalid store \(--store \/ LETHE_STORE\): unsupported object store URL scheme/,
    ],
    [[], { LETHE_STORE: 's3://bucket' }, /^invalid store \(--store \/ LETHE_STORE\): .*endpoint/],
  ])('rejects %j %j naming the key', (args, env, message) => {
    expect(() => parseWorkerConfig(args, env)).toThrow(ConfigError);
    expect(() => parseWorkerConfig(args, env)).toThrow(message);
  });

  it('reads --config FILE (JSON) and LETHE_CONFIG, below the environment and flags', () => {
    const file = join(dir, 'worker.json');
    writeFileSync(
      file,
      JSON.stringify({ port: 7002, coordinator: 'coordinator:50051', maxExperts: 3, name: 'w2' }),
    );
    expect(parseWorkerConfig(['--config', file], {})).toEqual({
      host: '127.0.0.1',
      port: 7002,
      metricsPort: 0,
      coordinator: 'coordinator:50051',
      name: 'w2',
      maxExperts: 3,
      graceMs: 10_000,
    });
    expect(
      parseWorkerConfig(['--name', 'w3'], { LETHE_CONFIG: file, LETHE_MAX_EXPERTS: '4' }),
    ).toMatchObject({ port: 7002, name: 'w3', maxExperts: 4 });

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ maxExperts: 0 }));
    expect(() => parseWorkerConfig(['--config', bad], {})).toThrow(
      `invalid maxExperts (--max-experts / LETHE_MAX_EXPERTS / file ${bad}): expected an integer 1..1024, got 0`,
    );
    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ port: 1, heartbeatIntervalMs: 100 }));
    expect(() => parseWorkerConfig(['--config', unknown], {})).toThrow(ConfigError);
    expect(() => parseWorkerConfig(['--config', unknown], {})).toThrow(
      /unknown key "heartbeatIntervalMs"/,
    );
  });

  it('rejects unknown flags', () => {
    expect(() => parseWorkerConfig(['--bogus'], {})).toThrow(/unknown option/);
  });

  it('keeps secrets out of store URLs it logs', () => {
    expect(redactStoreUrl('/data/store')).toBe('/data/store');
    expect(
      redactStoreUrl(
        's3://bucket/prefix?endpoint=http://user:pw@minio:9000&region=eu&X-Amz-Signature=abc',
      ),
    ).toBe(
      's3://bucket/prefix?endpoint=http%3A%2F%2Fminio%3A9000%2F&region=eu&X-Amz-Signature=REDACTED',
    );
    expect(redactStoreUrl('s3://key:secret@bucket/p')).toBe('s3://bucket/p');
  });
});
