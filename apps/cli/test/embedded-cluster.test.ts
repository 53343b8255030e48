import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CLUSTER_FILE,
  type ClusterFile,
  readClusterFile,
  removeClusterFile,
  writeClusterFile,
} from '../src/cluster/cluster-file';
import {
  appEntry,
  type EmbeddedClusterOptions,
  isSourceMode,
  startEmbeddedCluster,
} from '../src/cluster/embedded-cluster';
import {
  connectableAddress,
  describeLogLine,
  failureLine,
  isErrorLine,
  listeningAddress,
  parseLogLine,
} from '../src/cluster/log-lines';
import { callUnary, connectCoordinator } from '../src/remote/grpc';
import { startLethe, letheAsync } from './cli-async';

const work = mkdtempSync(join(tmpdir(), 'lethe-cluster-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const FAKE_COORDINATOR = resolve(__dirname, 'fixtures', 'fake-coordinator.ts');
const FAKE_WORKER = resolve(__dirname, 'fixtures', 'fake-worker.ts');
const fakes = { coordinator: appEntry(FAKE_COORDINATOR), worker: appEntry(FAKE_WORKER) };

let runs = 0;
function options(overrides: Partial<EmbeddedClusterOptions> = {}): EmbeddedClusterOptions & {
  messages: string[];
} {
  const messages: string[] = [];
  return {
    workers: 2,
    store: join(work, `run-${++runs}`, 'store'),
    port: 0,
    host: '127.0.0.1',
    apps: fakes,
    log: (m) => messages.push(m),
    messages,
    ...overrides,
  };
}

const args = (store: string, name: string): string[] =>
  JSON.parse(readFileSync(join(store, 'fake-args', `${name}.json`), 'utf8')) as string[];

describe('log lines', () => {
  const pino =
    '{"level":30,"time":1732640000000,"pid":42,"hostname":"h","msg":"coordinator listening","address":"127.0.0.1:7070"}';

  it('finds the address of the listening line and nothing else', () => {
    expect(listeningAddress(pino, 'coordinator listening')).toBe('127.0.0.1:7070');
    expect(listeningAddress(pino, 'worker listening')).toBeUndefined();
    expect(
      listeningAddress('coordinator listening on 127.0.0.1:7070', 'coordinator listening'),
    ).toBeUndefined();
    expect(
      listeningAddress('{"msg":"coordinator listening"}', 'coordinator listening'),
    ).toBeUndefined();
    expect(
      listeningAddress('{"msg":"coordinator listening","address":', 'coordinator listening'),
    ).toBeUndefined();
    expect(
      listeningAddress(
        '  {"level":30,"msg":"worker listening","address":"[::1]:40123"}\r',
        'worker listening',
      ),
    ).toBe('[::1]:40123');
  });

  it('parses only JSON objects', () => {
    expect(parseLogLine('[1,2]')).toBeUndefined();
    expect(parseLogLine('null')).toBeUndefined();
    expect(parseLogLine('{"msg":"x"}')).toEqual({ msg: 'x' });
  });

  it('describes error lines in one short line', () => {
    const line = '{"level":50,"msg":"cannot open database","err":{"message":"EACCES /db"}}';
    expect(describeLogLine(line)).toBe('cannot open database: EACCES /db');
    expect(describeLogLine('  Error: boom ')).toBe('Error: boom');
    expect(isErrorLine(line)).toBe(true);
    expect(isErrorLine(pino)).toBe(false);
    expect(isErrorLine('plain stderr text')).toBe(true);
    expect(isErrorLine('   ')).toBe(false);
  });

  it('picks the line that explains a crash', () => {
    const crash = [
      'node:internal/modules/run_main:123',
      '    triggerUncaughtException(',
      '    ^',
      '',
      'Error: Transform failed with 1 error:',
      '/app/src/api.ts:68:4: ERROR: Parameter decorators only work when experimental decorators are enabled',
      '    at failureErrorWithLog (/esbuild/lib/main.js:1752:15)',
      "  name: 'TransformError'",
      '}',
      '',
      'Node.js v20.20.2',
    ].filter(isErrorLine);
    expect(crash).not.toContain('Node.js v20.20.2');
    expect(failureLine(crash)).toBe(
      'Error: Transform failed with 1 error: /app/src/api.ts:68:4: ERROR: Parameter decorators only work when experimental decorators are enabled',
    );
    expect(
      failureLine([
        'warning text',
        '{"level":50,"msg":"bind failed","err":{"message":"EADDRINUSE"}}',
      ]),
    ).toBe('bind failed: EADDRINUSE');
    expect(failureLine(['just text'])).toBe('just text');
    expect(failureLine([])).toBeUndefined();
  });

  it('dials the loopback address for a wildcard listener', () => {
    expect(connectableAddress('0.0.0.0:7070')).toBe('127.0.0.1:7070');
    expect(connectableAddress('[::]:7070')).toBe('[::1]:7070');
    expect(connectableAddress('10.0.0.5:7070')).toBe('10.0.0.5:7070');
  });

  it('knows when it runs from sources', () => {
    expect(isSourceMode(['--conditions=@lethe/source', '--import', 'tsx'])).toBe(true);
    expect(isSourceMode(['--conditions', '@lethe/source'])).toBe(true);
    expect(isSourceMode(['--enable-source-maps'])).toBe(false);
    expect(appEntry('/x/main.js')).toEqual({ execArgv: [], script: '/x/main.js' });
    expect(appEntry('/x/main.ts').execArgv[0]).toBe('--conditions=@lethe/source');
  });
});

describe('cluster.json', () => {
  const info: ClusterFile = {
    coordinator: '127.0.0.1:7070',
    pid: process.pid,
    workers: [{ name: 'worker-1', pid: 11, address: '127.0.0.1:40001' }],
    store: '/tmp/store',
    logs: '/tmp/logs',
    startedAt: '2025-01-01T00:00:00.000Z',
  };

  it('is written atomically and read back', async () => {
    const path = join(work, 'a', CLUSTER_FILE);
    await writeClusterFile(path, info);
    expect(readClusterFile(path)).toEqual(info);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(info);
    removeClusterFile(path, process.pid + 1);
    expect(existsSync(path)).toBe(true); // not ours
    removeClusterFile(path, process.pid);
    expect(existsSync(path)).toBe(false);
    expect(readClusterFile(path)).toBeUndefined();
  });

  it('rejects a malformed file with one line', () => {
    const path = join(work, 'bad.json');
    writeFileSync(path, '{"coordinator": 1');
    expect(() => readClusterFile(path)).toThrow(/bad\.json is not valid JSON/);
    writeFileSync(path, '{"coordinator": "x"}');
    expect(() => readClusterFile(path)).toThrow(/does not describe a cluster/);
  });
});

describe('startEmbeddedCluster (fake apps)', () => {
  it('starts a coordinator and workers, waits for registration, and stops them', async () => {
    const o = options();
    const cluster = await startEmbeddedCluster(o);
    try {
      expect(cluster.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(cluster.children.map((c) => c.name)).toEqual(['coordinator', 'worker-1', 'worker-2']);
      for (const child of cluster.children) {
        expect(child.pid).toBeGreaterThan(0);
        expect(child.address).toMatch(/^127\.0\.0\.1:\d+$/);
        expect(existsSync(child.logFile)).toBe(true);
      }
      const store = resolve(o.store);
      expect(args(store, 'coordinator')).toEqual([
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--store',
        store,
        '--db',
        resolve(store, '..', 'coordinator.sqlite'),
      ]);
      expect(args(store, 'worker-2')).toEqual([
        '--coordinator',
        cluster.address,
        '--store',
        store,
        '--name',
        'worker-2',
        '--port',
        '0',
      ]);
      const client = connectCoordinator(cluster.address);
      const { workers } = await callUnary(client, client.listWorkers, {});
      client.close();
      expect(workers.map((w) => w.workerId).sort()).toEqual(['worker-1', 'worker-2']);
      expect(o.messages.at(-1)).toMatch(/cluster ready: coordinator 127\.0\.0\.1:\d+, 2 workers/);
    } finally {
      await cluster.stop();
    }
    const exits = await Promise.all(cluster.children.map((c) => c.exited));
    expect(exits).toEqual(exits.map(() => ({ code: 0, signal: null })));
    expect(readFileSync(cluster.children[0]!.logFile, 'utf8')).toMatch(/"msg":"stopping"/);
    expect(o.messages.join('\n')).not.toMatch(/unexpectedly/);
  });

  it('reports a process that exits on its own in one line and restarts nothing', async () => {
    const o = options({ workers: 1 });
    const cluster = await startEmbeddedCluster(o);
    try {
      const worker = cluster.children[1]!;
      process.kill(worker.pid, 'SIGKILL');
      await worker.exited;
      await new Promise((done) => setTimeout(done, 50));
      const lines = o.messages.filter((m) => /unexpectedly/.test(m));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^worker-1 \(pid \d+\) exited unexpectedly with signal SIGKILL/);
      expect(cluster.children).toHaveLength(2);
    } finally {
      await cluster.stop();
    }
  });

  it('fails clearly when the coordinator exits before listening', async () => {
    const o = options({ env: { FAKE_COORDINATOR_FAIL: '1' } });
    await expect(startEmbeddedCluster(o)).rejects.toThrow(
      /^coordinator exited with code 2 while starting: cannot open database: EACCES .*coordinator\.sqlite$/,
    );
  });

  it('fails clearly when a worker crashes while starting, and stops the others', async () => {
    const o = options({ env: { FAKE_CRASH: 'worker-2' } });
    await expect(startEmbeddedCluster(o)).rejects.toThrow(
      /^worker-2 exited with code 3 while starting: worker crashed: out of memory$/,
    );
    const coordinatorLog = readFileSync(
      join(resolve(o.store), '..', 'logs', 'coordinator.log'),
      'utf8',
    );
    expect(coordinatorLog).toMatch(/"msg":"stopping"/);
  });

  it('gives up when not every worker registers in time', async () => {
    const o = options({ env: { FAKE_NO_REGISTER: 'worker-2' }, timeoutMs: 4000 });
    await expect(startEmbeddedCluster(o)).rejects.toThrow(
      /^only 1 of 2 workers registered with the coordinator within 4 s \(logs: .*logs\)$/,
    );
  });

  it('kills a process that ignores SIGTERM after the grace period', async () => {
    const o = options({ workers: 1, graceMs: 300, env: { FAKE_IGNORE_SIGTERM: 'worker-1' } });
    const cluster = await startEmbeddedCluster(o);
    await cluster.stop();
    const [coordinator, worker] = await Promise.all(cluster.children.map((c) => c.exited));
    expect(worker).toEqual({ code: null, signal: 'SIGKILL' });
    expect(coordinator).toEqual({ code: 0, signal: null });
    expect(o.messages.join('\n')).toMatch(
      /worker-1 \(pid \d+\) did not stop within 0\.3 s: killing it/,
    );
  });
});

describe('lethe up (fake apps)', () => {
  const env = { LETHE_COORDINATOR_ENTRY: FAKE_COORDINATOR, LETHE_WORKER_ENTRY: FAKE_WORKER };

  it('writes .lethe/cluster.json, serves lethe status, and stops on SIGINT', async () => {
    const cwd = mkdtempSync(join(work, 'up-'));
    const up = startLethe(['up', '--workers', '2', '--port', '0'], { cwd, env });
    let stdout = '';
    let stderr = '';
    up.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    up.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((done) => up.once('close', done));
    const deadline = Date.now() + 60_000;
    while (!/ready:/.test(stdout)) {
      if (Date.now() > deadline) throw new Error(`lethe up did not get ready\n${stderr}`);
      await new Promise((done) => setTimeout(done, 100));
    }
    try {
      const cluster = readClusterFile(join(cwd, CLUSTER_FILE))!;
      expect(cluster.pid).toBe(up.pid);
      expect(cluster.coordinator).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(cluster.workers.map((w) => w.name)).toEqual(['worker-1', 'worker-2']);
      expect(cluster.store).toBe(join(cwd, '.lethe', 'store'));
      expect(stdout).toMatch(/coordinator\s+\d+\s+127\.0\.0\.1:\d+/);
      expect(stdout).toMatch(/worker-2\s+\d+\s+127\.0\.0\.1:\d+/);

      const status = await letheAsync(['status'], { cwd, env: { LETHE_COORDINATOR: undefined } });
      expect(status.stderr).toBe('');
      expect(status.status).toBe(0);
      expect(status.stdout).toContain(
        `coordinator ${cluster.coordinator} (from .lethe/cluster.json)`,
      );
      expect(status.stdout).toMatch(/workers: 2 alive of 2/);

      const second = await letheAsync(['up', '--port', '0'], { cwd, env });
      expect(second.status).toBe(1);
      expect(second.stderr).toMatch(
        /^lethe: error: a cluster is already running from this directory/,
      );
    } finally {
      up.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/SIGINT: stopping the workers, then the coordinator/);
    expect(stderr).toMatch(/cluster stopped/);
    expect(existsSync(join(cwd, CLUSTER_FILE))).toBe(false);
  });

  it('fails in one line when the apps cannot start', async () => {
    const cwd = mkdtempSync(join(work, 'up-'));
    const run = await letheAsync(['up', '--port', '0'], {
      cwd,
      env: { ...env, FAKE_COORDINATOR_FAIL: '1' },
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /\nlethe: error: coordinator exited with code 2 while starting: cannot open database/,
    );
    expect(existsSync(join(cwd, CLUSTER_FILE))).toBe(false);
  });
});
