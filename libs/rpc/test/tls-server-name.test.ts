import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  readTlsMaterial,
  type RunningServer,
  startGrpcServer,
  tlsChannelCredentials,
  tlsServerCredentials,
  tlsServerName,
} from '../src';

const DEV_CA = resolve(__dirname, '..', '..', '..', 'scripts', 'dev-ca.sh');
const dir = mkdtempSync(join(tmpdir(), 'lethe-rpc-sni-'));
const files = (name: string) => ({
  cert: join(dir, `${name}.pem`),
  key: join(dir, `${name}-key.pem`),
  ca: join(dir, 'ca.pem'),
});

/** A TLS server with only the standard health service, presenting `certificate`. */
function tlsServer(certificate: string): Promise<RunningServer> {
  return startGrpcServer({
    address: '127.0.0.1:0',
    services: [],
    healthServices: [],
    credentials: tlsServerCredentials(readTlsMaterial(files(certificate)), 'none'),
  });
}

let server: RunningServer;
let wrongCertificate: RunningServer;
beforeAll(async () => {
  // w1 names localhost, 127.0.0.1 and ::1; alice is a client certificate, naming no host.
  execFileSync('bash', [DEV_CA, '--out', dir, '--worker', 'w1', '--client', 'alice'], {
    stdio: 'ignore',
  });
  server = await tlsServer('w1');
  wrongCertificate = await tlsServer('alice');
});
afterAll(async () => {
  await Promise.all([server.shutdown(100), wrongCertificate.shutdown(100)]);
  rmSync(dir, { recursive: true, force: true });
});

const port = (address: string): string => address.slice(address.lastIndexOf(':') + 1);

const Health = grpc.makeGenericClientConstructor(
  healthService as unknown as grpc.ServiceDefinition,
  'Health',
);

/** The health status over TLS to `target`, trusting the dev CA; the status name on failure. */
async function checkOver(target: string): Promise<string> {
  const health = new Health(
    target,
    tlsChannelCredentials({ ca: readTlsMaterial(files('w1')).ca }),
  ) as unknown as grpc.Client & {
    check(
      request: { service: string },
      options: grpc.CallOptions,
      callback: (error: grpc.ServiceError | null, response: { status: string }) => void,
    ): void;
  };
  try {
    return await new Promise<string>((resolve, reject) =>
      health.check({ service: '' }, { deadline: Date.now() + 5_000 }, (error, response) =>
        error ? reject(error) : resolve(response.status),
      ),
    );
  } catch (error) {
    return grpc.status[(error as grpc.ServiceError).code] ?? String(error);
  } finally {
    health.close();
  }
}

describe('TLS server name (SNI)', () => {
  it('is the host for a DNS name, none for an IP address, the override when given', () => {
    const uri = (path: string) => ({ scheme: 'dns', authority: '', path });
    expect(tlsServerName(uri('coordinator.lethe.svc:7070'))).toBe('coordinator.lethe.svc');
    expect(tlsServerName(uri('127.0.0.1:7070'))).toBeUndefined();
    expect(tlsServerName(uri('[::1]:7070'))).toBeUndefined();
    expect(
      tlsServerName(uri('127.0.0.1:7070'), { 'grpc.ssl_target_name_override': 'worker-0' }),
    ).toBe('worker-0');
  });

  it('connects by IP address without a DEP0123 warning, still verifying the certificate', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => {
      warnings.push(warning.code ?? warning.message);
    };
    process.on('warning', onWarning);
    try {
      expect(await checkOver(server.address)).toBe('SERVING');
      expect(await checkOver(`localhost:${port(server.address)}`)).toBe('SERVING');
      // A certificate that does not name 127.0.0.1 is refused: verification by IP still runs.
      expect(await checkOver(wrongCertificate.address)).toBe('UNAVAILABLE');
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).not.toContain('DEP0123');
  });
});
