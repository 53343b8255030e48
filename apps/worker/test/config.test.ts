import { describe, expect, it } from 'vitest';
import { ConfigError, parseWorkerConfig, redactStoreUrl } from '../src/config';

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
    [['--port', '70000'], {}, /^--port: expected an integer 0\.\.65535, got "70000"$/],
    [['--metrics-port', '70000'], {}, /^--metrics-port: expected an integer 0\.\.65535/],
    [[], { LETHE_METRICS_PORT: 'http' }, /^LETHE_METRICS_PORT: expected an integer/],
    [[], { LETHE_WORKER_PORT: '-1' }, /^LETHE_WORKER_PORT: expected an integer/],
    [['--max-experts', '0'], {}, /^--max-experts: expected an integer 1\.\.1024/],
    [[], { LETHE_MAX_EXPERTS: 'many' }, /^LETHE_MAX_EXPERTS:/],
    [['--coordinator', 'nohost'], {}, /^--coordinator: expected host:port/],
    [['--advertise', 'h:0'], {}, /^--advertise: expected host:port with a port 1\.\.65535/],
    [['--host', 'a b'], {}, /^--host:/],
    [['--name', '-x'], {}, /^--name:/],
    [['--store', 'ftp://x'], {}, /^--store: unsupported object store URL scheme/],
    [[], { LETHE_STORE: 's3://bucket' }, /^LETHE_STORE: .*endpoint/],
  ])('rejects %j %j naming the key', (args, env, message) => {
    expect(() => parseWorkerConfig(args, env)).toThrow(ConfigError);
    expect(() => parseWorkerConfig(args, env)).toThrow(message);
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
