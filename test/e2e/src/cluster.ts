import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { makeSyntheticDataset, writeCifar10 } from '@lethe/data';
import { CoordinatorClient, type Job, type JobEvent, JobState, WorkerState } from '@lethe/proto';
import { bearerTokenInterceptor, callUnary, tlsChannelCredentials } from '@lethe/rpc';
import S3rver from 's3rver';
import { REPO, type ServiceProcess, startService } from './processes';

/** s3rver's built-in account. */
export const S3_ENV = { LETHE_S3_ACCESS_KEY: 'S3RVER', LETHE_S3_SECRET_KEY: 'S3RVER' };

export interface Cluster {
  dir: string;
  data: string;
  /** The object store URL every process shares. */
  store: string;
  address: string;
  client: CoordinatorClient;
  coordinator: ServiceProcess;
  workers: ServiceProcess[];
  startWorker(name: string): Promise<ServiceProcess>;
  restartCoordinator(signal: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
  /** With `secure`: the certificates' directory, tokens, and a client with any token. */
  security?: {
    tlsDir: string;
    adminToken: string;
    viewerToken: string;
    connect(token?: string): CoordinatorClient;
  };
}

export interface ClusterOptions {
  /**
   * Mutual TLS between every process (certificates from scripts/dev-ca.sh) and an auth file
   * with an admin and a viewer token; `client` is then the admin's, over TLS.
   */
  secure?: boolean;
}

/** Certificates for the coordinator and workers `names`, and an auth file of two tokens. */
function makeSecurity(dir: string, names: string[]) {
  const tlsDir = join(dir, 'tls');
  execFileSync(
    'bash',
    [join(REPO, 'scripts', 'dev-ca.sh'), '--out', tlsDir, ...names.flatMap((n) => ['--worker', n])],
    { stdio: 'ignore' },
  );
  const adminToken = `lethe_${randomBytes(32).toString('hex')}`;
  const viewerToken = `lethe_${randomBytes(32).toString('hex')}`;
  const hash = (token: string) => `sha256:${createHash('sha256').update(token).digest('hex')}`;
  const authFile = join(dir, 'auth.json');
  writeFileSync(
    authFile,
    JSON.stringify({
      tokens: {
        [hash(adminToken)]: { subject: 'alice', role: 'admin' },
        [hash(viewerToken)]: { subject: 'bob', role: 'viewer' },
      },
    }),
  );
  return { tlsDir, adminToken, viewerToken, authFile };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/**
 * A coordinator, `workers` worker processes and an S3 server (s3rver) on loopback, with a
 * generated 6-class dataset in the CIFAR-10 binary layout that every process reads itself.
 */
export async function startCluster(
  workers: number,
  options: ClusterOptions = {},
): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'lethe-e2e-'));
  const names = Array.from({ length: workers + 1 }, (_, i) => `worker-${i + 1}`);
  const security = options.secure ? makeSecurity(dir, names) : undefined;
  // The coordinator takes its TLS and auth settings from LETHE_* variables, workers from flags.
  const coordinatorTls: Record<string, string> = security
    ? {
        LETHE_TLS_CERT: join(security.tlsDir, 'coordinator.pem'),
        LETHE_TLS_KEY: join(security.tlsDir, 'coordinator-key.pem'),
        LETHE_TLS_CA: join(security.tlsDir, 'ca.pem'),
        LETHE_AUTH_FILE: security.authFile,
      }
    : {};
  const workerTls = (name: string): string[] =>
    security && existsSync(join(security.tlsDir, `${name}.pem`))
      ? [
          '--tls-cert',
          join(security.tlsDir, `${name}.pem`),
          '--tls-key',
          join(security.tlsDir, `${name}-key.pem`),
          '--tls-ca',
          join(security.tlsDir, 'ca.pem'),
        ]
      : [];
  const train = makeSyntheticDataset({ perClass: 48, split: 'train', seed: 3, classes: 6 });
  const test = makeSyntheticDataset({ perClass: 16, split: 'test', seed: 3, classes: 6 });
  const data = `cifar10:${writeCifar10(dir, { train, test })}`;
  const s3 = new S3rver({
    port: 0,
    address: '127.0.0.1',
    silent: true,
    directory: join(dir, 's3'),
  });
  const { port: s3Port } = (await s3.run()) as unknown as { port: number };
  // s3rver ignores If-None-Match; the coordinator is the only manifest writer, so it may check
  // conditional puts itself (never do this against a shared production bucket).
  const store = `s3://lethe/e2e?endpoint=http://127.0.0.1:${s3Port}&conditional-put=emulate`;
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const env = {
    ...S3_ENV,
    ...coordinatorTls,
    LETHE_HEARTBEAT_INTERVAL_MS: '300',
    LETHE_HEARTBEAT_TIMEOUT_MS: '3000',
  };
  const launchCoordinator = (): ServiceProcess =>
    startService(
      'coordinator',
      'coordinator',
      [
        '--port',
        String(port),
        '--store',
        store,
        '--db',
        join(dir, 'coordinator.sqlite'),
        '--checkpoint-every-steps',
        '4',
      ],
      env,
    );
  let coordinator = launchCoordinator();
  await coordinator.waitFor('coordinator listening');
  const clients: CoordinatorClient[] = [];
  const connect = (token?: string): CoordinatorClient => {
    const client = security
      ? new CoordinatorClient(
          address,
          tlsChannelCredentials({ ca: readFileSync(join(security.tlsDir, 'ca.pem')) }),
          { interceptors: token ? [bearerTokenInterceptor(token)] : [] },
        )
      : new CoordinatorClient(address, grpc.credentials.createInsecure());
    clients.push(client);
    return client;
  };
  const client = connect(security?.adminToken);
  const running: ServiceProcess[] = [];
  const startWorker = async (name: string): Promise<ServiceProcess> => {
    const worker = startService(
      name,
      'worker',
      [
        '--coordinator',
        address,
        '--store',
        store,
        '--name',
        name,
        '--port',
        '0',
        ...workerTls(name),
      ],
      S3_ENV,
    );
    running.push(worker);
    await worker.waitFor('worker listening');
    return worker;
  };
  await Promise.all(names.slice(0, workers).map((name) => startWorker(name)));
  await waitForWorkers(client, workers);
  const cluster: Cluster = {
    dir,
    data,
    store,
    address,
    client,
    get coordinator() {
      return coordinator;
    },
    workers: running,
    startWorker,
    ...(security
      ? {
          security: {
            tlsDir: security.tlsDir,
            adminToken: security.adminToken,
            viewerToken: security.viewerToken,
            connect,
          },
        }
      : {}),
    async restartCoordinator(signal) {
      await coordinator.kill(signal);
      coordinator = launchCoordinator();
      await coordinator.waitFor('coordinator listening');
    },
    async stop() {
      clients.forEach((c) => c.close());
      await Promise.all([...running, coordinator].map((p) => p.kill('SIGTERM')));
      await s3.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** Waits until at least `n` workers are alive. */
export async function waitForWorkers(client: CoordinatorClient, n: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { workers } = await callUnary(client, client.listWorkers, {}, { retries: 5 });
    if (workers.filter((w) => w.state === WorkerState.WORKER_STATE_ALIVE).length >= n) return;
    if (Date.now() > deadline) throw new Error(`fewer than ${n} workers alive after 60 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const TERMINAL = [
  JobState.JOB_STATE_SUCCEEDED,
  JobState.JOB_STATE_FAILED,
  JobState.JOB_STATE_CANCELLED,
];

/** Polls GetJob until the job is terminal (survives coordinator restarts). */
export async function waitForJob(client: CoordinatorClient, jobId: string): Promise<Job> {
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      const job = await callUnary(client, client.getJob, { jobId }, { retries: 5 });
      if (TERMINAL.includes(job.state)) return job;
    } catch (error) {
      if ((error as grpc.ServiceError).code !== grpc.status.UNAVAILABLE) throw error;
    }
    if (Date.now() > deadline) throw new Error(`job ${jobId} not finished after 240 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Collects a job's WatchJob stream until it ends. */
export function watchJob(
  client: CoordinatorClient,
  jobId: string,
  onEvent?: (e: JobEvent) => void,
): Promise<JobEvent[]> {
  return new Promise((resolve, reject) => {
    const events: JobEvent[] = [];
    const stream = client.watchJob({ jobId, includeLogs: true });
    stream.on('data', (event: JobEvent) => {
      events.push(event);
      onEvent?.(event);
    });
    stream.on('end', () => resolve(events));
    stream.on('error', reject);
  });
}
