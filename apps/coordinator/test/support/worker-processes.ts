import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';

/** What coordinator tests with real worker processes share: ports, workers, polling, calls. */

export const REPO = resolve(__dirname, '..', '..', '..', '..');

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((done, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
    server.on('error', reject);
  });
}

/** A worker process from sources (wasm engine) registering with the coordinator at `port`. */
export function startWorker(options: {
  name: string;
  port: number;
  storeDir: string;
}): ChildProcess {
  return spawn(
    process.execPath,
    [
      '--conditions=@lethe/source',
      '--import',
      'tsx',
      'apps/worker/src/main.ts',
      '--coordinator',
      `127.0.0.1:${options.port}`,
      '--store',
      options.storeDir,
      '--name',
      options.name,
      '--port',
      '0',
    ],
    { cwd: REPO, env: { ...process.env, LETHE_ENGINE: 'wasm' }, stdio: 'ignore' },
  );
}

/** Polls `probe` every 50 ms until it returns a value; fails naming `what` after `ms`. */
export async function until<T>(what: string, probe: () => T | undefined, ms = 120_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A unary call as its status code, details and response (OK only), never a rejection. */
export function unary<Req, Res>(
  client: grpc.Client,
  method: (r: Req, cb: (e: grpc.ServiceError | null, res: Res) => void) => unknown,
  request: Req,
): Promise<{ code: grpc.status; details: string; response?: Res }> {
  return new Promise((done) => {
    method.call(client, request, (error, response) =>
      done(
        error
          ? { code: error.code, details: error.details }
          : { code: grpc.status.OK, details: '', response },
      ),
    );
  });
}
