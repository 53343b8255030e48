import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCKER_DIR } from '../src/checks';

const SCRIPT = join(DOCKER_DIR, 'grpc-health-check.mjs');

interface Probe {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the probe script as the images' HEALTHCHECK does: `node grpc-health-check.mjs …`. */
function probe(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, ...args], {
      env: { PATH: process.env['PATH'], ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function startServer(
  credentials = ServerCredentials.createInsecure(),
): Promise<{ server: Server; health: HealthImplementation; target: string }> {
  const server = new Server();
  // The same health service implementation @lethe/rpc puts on every Lethe server.
  const health = new HealthImplementation({ '': 'SERVING', 'lethe.v1.Worker': 'SERVING' });
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', credentials, (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  return { server, health, target: `127.0.0.1:${port}` };
}

describe('deploy/docker/grpc-health-check.mjs', () => {
  let server: Server;
  let health: HealthImplementation;
  let target: string;

  beforeAll(async () => {
    ({ server, health, target } = await startServer());
  });
  afterAll(() => {
    server.forceShutdown();
  });

  it('exits 0 when the server or a named service is SERVING', async () => {
    const whole = await probe([target]);
    expect(whole).toMatchObject({ code: 0, stdout: `${target}: SERVING\n` });
    const named = await probe([target, '--service', 'lethe.v1.Worker']);
    expect(named.code).toBe(0);
    // The target may come from LETHE_HEALTH_TARGET (as the images set it).
    expect((await probe([], { LETHE_HEALTH_TARGET: target })).code).toBe(0);
  });

  it('exits 1 on NOT_SERVING, an unknown service, no server or bad arguments', async () => {
    health.setStatus('lethe.v1.Worker', 'NOT_SERVING');
    try {
      const notServing = await probe([target, '--service=lethe.v1.Worker']);
      expect(notServing.code).toBe(1);
      expect(notServing.stderr).toContain('NOT_SERVING');
    } finally {
      health.setStatus('lethe.v1.Worker', 'SERVING');
    }
    const unknown = await probe([target, '--service', 'lethe.v1.Nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('NOT_FOUND');

    const closed = await startServer();
    closed.server.forceShutdown();
    const started = Date.now();
    const down = await probe([closed.target, '--timeout-ms', '2000']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/UNAVAILABLE|DEADLINE_EXCEEDED/);
    expect(Date.now() - started).toBeLessThan(10_000);

    for (const bad of [
      ['not-a-target'],
      [target, '--timeout-ms', '0'],
      [target, '--tls-cert', 'x'],
    ]) {
      expect((await probe(bad)).code, bad.join(' ')).toBe(1);
    }
  });

  // TLS is not served by Lethe yet; the probe's TLS options are checked against a grpc-js TLS
  // server with a throw-away self-signed certificate, where openssl exists.
  const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
  it.skipIf(!hasOpenssl)('speaks TLS with --tls-ca and --tls-server-name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lethe-tls-'));
    try {
      const made = spawnSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=lethe-test',
          '-addext',
          'subjectAltName=DNS:lethe-test',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { encoding: 'utf8' },
      );
      expect(made.status, made.stderr).toBe(0);
      const cert = readFileSync(join(dir, 'cert.pem'));
      const key = readFileSync(join(dir, 'key.pem'));
      const tls = await startServer(
        ServerCredentials.createSsl(null, [{ cert_chain: cert, private_key: key }]),
      );
      try {
        const ok = await probe([tls.target], {
          LETHE_HEALTH_TLS_CA: join(dir, 'cert.pem'),
          LETHE_HEALTH_TLS_SERVER_NAME: 'lethe-test',
        });
        expect(ok.stderr).toBe('');
        expect(ok.code).toBe(0);
        const plaintext = await probe([tls.target, '--timeout-ms', '2000']);
        expect(plaintext.code).toBe(1);
      } finally {
        tls.server.forceShutdown();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/docker/worker-entrypoint.sh', () => {
  /** Runs the entry point with a stand-in `node` that prints what the worker would get. */
  function entrypoint(env: NodeJS.ProcessEnv, args: string[] = []): Record<string, string> {
    const dir = mkdtempSync(join(tmpdir(), 'lethe-entry-'));
    try {
      const fake = join(dir, 'node');
      writeFileSync(
        fake,
        '#!/bin/sh\necho "ADVERTISE=$LETHE_WORKER_ADVERTISE"\necho "NAME=$LETHE_WORKER_NAME"\necho "ARGS=$*"\n',
      );
      chmodSync(fake, 0o755);
      const result = spawnSync('sh', [join(DOCKER_DIR, 'worker-entrypoint.sh'), ...args], {
        env: { PATH: `${dir}:/usr/bin:/bin`, ...env },
        encoding: 'utf8',
      });
      expect(result.status, result.stderr).toBe(0);
      return Object.fromEntries(
        result.stdout
          .trim()
          .split('\n')
          .map((line) => line.split(/=(.*)/s, 2) as [string, string]),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('advertises the container hostname and port unless told otherwise', () => {
    expect(entrypoint({ HOSTNAME: '3f2a9c1b7d10', LETHE_WORKER_PORT: '7071' })).toEqual({
      ADVERTISE: '3f2a9c1b7d10:7071',
      NAME: '3f2a9c1b7d10',
      ARGS: '/opt/lethe/apps/worker/dist/main.js',
    });
    expect(
      entrypoint(
        { HOSTNAME: 'h', LETHE_WORKER_ADVERTISE: 'w-0.svc:7071', LETHE_WORKER_NAME: 'w-0' },
        ['--max-experts', '2'],
      ),
    ).toEqual({
      ADVERTISE: 'w-0.svc:7071',
      NAME: 'w-0',
      ARGS: '/opt/lethe/apps/worker/dist/main.js --max-experts 2',
    });
  });
});
