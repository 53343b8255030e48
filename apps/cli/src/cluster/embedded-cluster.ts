import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { WorkerState } from '@lethe/proto';
import { CliError } from '../terminal/errors';
import { callUnary, connectCoordinator } from '../remote/grpc';
import { connectableAddress, failureLine, isErrorLine, listeningAddress } from './log-lines';
import { counted } from '../terminal/wording';

export type ClusterRole = 'coordinator' | 'worker';

/** How to start one of the apps: node flags, the entry script, extra environment. */
export interface AppEntry {
  execArgv: string[];
  script: string;
  env?: Record<string, string>;
}

export interface EmbeddedClusterOptions {
  /** Worker processes to start, >= 0. */
  workers: number;
  /** Local store directory shared by all processes (created if missing). */
  store: string;
  /** Coordinator port; 0 picks a free one. */
  port: number;
  /** Coordinator host to listen on. */
  host: string;
  /** One-line launcher events: started, ready, a process that exited unexpectedly, stopping. */
  log?: (message: string) => void;
  /** Coordinator database; default `<store>/../coordinator.sqlite`. */
  db?: string;
  /** The coordinator's forget window (--forget-window-ms); default its own, 0. */
  forgetWindowMs?: number;
  /** Directory of each process's log (`coordinator.log`, `worker-1.log`, ...); default `<store>/../logs`. */
  logDir?: string;
  /** Time allowed for the coordinator to listen and every worker to register; default 60 s. */
  timeoutMs?: number;
  /** Time a process gets after SIGTERM before SIGKILL; default 10 s. */
  graceMs?: number;
  /** Entry points to use instead of the installed `@lethe/coordinator` / `@lethe/worker`. */
  apps?: Partial<Record<ClusterRole, AppEntry>>;
  /** Extra environment for the processes. */
  env?: NodeJS.ProcessEnv;
  /** Aborting stops whatever has started and rejects. */
  signal?: AbortSignal;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ClusterChild {
  /** `coordinator`, `worker-1`, `worker-2`, ... */
  name: string;
  role: ClusterRole;
  pid: number;
  /** The address from its `... listening` log line (as logged). */
  address: string;
  /** Where its stdout and stderr go. */
  logFile: string;
  process: ChildProcess;
  /** Resolves when the process has exited, whatever the reason. */
  exited: Promise<ExitInfo>;
}

export interface EmbeddedCluster {
  /** The coordinator's address as a client on this machine dials it. */
  address: string;
  store: string;
  db: string;
  logDir: string;
  /** The coordinator first, then the workers in order. */
  children: ClusterChild[];
  /** Stops the workers, then the coordinator: SIGTERM, then SIGKILL after the grace period. */
  stop(): Promise<void>;
  /** Sends SIGKILL to every process still running (a second Ctrl-C). */
  kill(): void;
}

export const COORDINATOR_ENTRY_ENV = 'LETHE_COORDINATOR_ENTRY';
export const WORKER_ENTRY_ENV = 'LETHE_WORKER_ENTRY';

/** Whether this process runs from TypeScript sources (`--conditions=@lethe/source`). */
export function isSourceMode(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some(
    (arg, i) =>
      arg === '--conditions=@lethe/source' ||
      arg === '-C=@lethe/source' ||
      ((arg === '--conditions' || arg === '-C') && execArgv[i + 1] === '@lethe/source'),
  );
}

/** Node flags that run a TypeScript entry from sources, wherever the process is started. */
export function sourceExecArgv(): string[] {
  return ['--conditions=@lethe/source', '--import', pathToFileURL(require.resolve('tsx')).href];
}

/** The tsconfig.json nearest to a file, looking upwards. */
function nearestTsconfig(file: string): string | undefined {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'tsconfig.json'))) return join(dir, 'tsconfig.json');
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * An entry script: `.ts` runs from sources (tsx), anything else with plain node. tsx reads the
 * tsconfig.json of the working directory, which may be anywhere; it is pointed at the one next
 * to the script instead (the coordinator's NestJS decorators need its experimentalDecorators).
 */
export function appEntry(script: string): AppEntry {
  if (!script.endsWith('.ts')) return { execArgv: [], script };
  const tsconfig = nearestTsconfig(script);
  return {
    execArgv: sourceExecArgv(),
    script,
    ...(tsconfig ? { env: { TSX_TSCONFIG_PATH: tsconfig } } : {}),
  };
}

function packageDir(name: string): string | undefined {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    // Not installed, or an exports map that hides package.json: look in node_modules directly.
    for (const dir of require.resolve.paths(name) ?? []) {
      if (existsSync(join(dir, name, 'package.json'))) return join(dir, name);
    }
    return undefined;
  }
}

/**
 * Where `@lethe/coordinator` or `@lethe/worker` starts: `src/main.ts` (through tsx) when this
 * process runs from sources, else the built `dist/main.js`. `LETHE_COORDINATOR_ENTRY` /
 * `LETHE_WORKER_ENTRY` name another entry script (tests, development).
 */
export function resolveApp(role: ClusterRole, source = isSourceMode()): AppEntry {
  const override = process.env[role === 'coordinator' ? COORDINATOR_ENTRY_ENV : WORKER_ENTRY_ENV];
  if (override) return appEntry(resolve(override));
  const name = `@lethe/${role}`;
  const dir = packageDir(name);
  if (!dir) throw new CliError(`${name} is not installed: run npm ci in the repository`);
  if (source) return appEntry(join(dir, 'src', 'main.ts'));
  const script = join(dir, 'dist', 'main.js');
  if (!existsSync(script)) {
    throw new CliError(`${name} is not built (no ${script}): run npm run build`);
  }
  return appEntry(script);
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

interface Running extends ClusterChild {
  exit: ExitInfo | undefined;
  recent: string[];
  onLine: ((line: string) => void)[];
  log: WriteStream;
}

/**
 * Starts a coordinator and `workers` worker processes on this machine over one local store,
 * waits until the coordinator listens and every worker has registered (ListWorkers shows them
 * ALIVE), and returns the running cluster. Nothing is restarted: a process that exits on its own
 * is reported through `log`. On failure or abort everything started is stopped before the error
 * is thrown.
 */
export async function startEmbeddedCluster(
  options: EmbeddedClusterOptions,
): Promise<EmbeddedCluster> {
  const log = options.log ?? ((): void => undefined);
  const store = resolve(options.store);
  const db = resolve(options.db ?? join(store, '..', 'coordinator.sqlite'));
  const logDir = resolve(options.logDir ?? join(store, '..', 'logs'));
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const graceMs = options.graceMs ?? 10_000;
  const coordinatorApp = options.apps?.coordinator ?? resolveApp('coordinator');
  const workerApp =
    options.workers > 0 ? (options.apps?.worker ?? resolveApp('worker')) : undefined;
  await mkdir(store, { recursive: true });
  await mkdir(logDir, { recursive: true });

  const children: Running[] = [];
  let ready = false;
  let stopping: Promise<void> | undefined;
  let failStartup: (error: Error) => void = () => undefined;
  const startupFailed = new Promise<never>((_, reject) => {
    failStartup = reject;
  });
  startupFailed.catch(() => undefined);

  const signalChild = (child: Running, signal: NodeJS.Signals): void => {
    if (child.exit || child.pid <= 0) return;
    try {
      process.kill(-child.pid, signal); // its process group: the app and anything it started
    } catch {
      child.process.kill(signal);
    }
  };
  const kill = (): void => children.forEach((c) => signalChild(c, 'SIGKILL'));
  const killOnExit = (): void => kill();
  process.on('exit', killOnExit);

  const terminate = async (child: Running): Promise<void> => {
    if (child.exit) return;
    signalChild(child, 'SIGTERM');
    const timer = setTimeout(() => {
      log(`${child.name} (pid ${child.pid}) did not stop within ${graceMs / 1000} s: killing it`);
      signalChild(child, 'SIGKILL');
    }, graceMs);
    await child.exited;
    clearTimeout(timer);
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await Promise.all(children.filter((c) => c.role === 'worker').map(terminate));
      await Promise.all(children.filter((c) => c.role === 'coordinator').map(terminate));
      await Promise.all(children.map((c) => new Promise<void>((done) => c.log.end(() => done()))));
      process.off('exit', killOnExit);
    })();
    return stopping;
  };

  const launch = (name: string, role: ClusterRole, app: AppEntry, args: string[]): Running => {
    const logFile = join(logDir, `${name}.log`);
    const proc = spawn(process.execPath, [...app.execArgv, app.script, ...args], {
      env: { ...process.env, ...app.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: Ctrl-C reaches only `lethe up`, which stops the processes in order.
      detached: true,
    });
    const child: Running = {
      name,
      role,
      pid: proc.pid ?? -1,
      address: '',
      logFile,
      process: proc,
      exit: undefined,
      recent: [],
      onLine: [],
      log: createWriteStream(logFile, { flags: 'a' }),
      // Resolved once its output has been read to the end ('close'), so the lines explaining a
      // crash are in; 'exit' plus 2 s if something else holds its pipes open.
      exited: new Promise<ExitInfo>((done) => {
        proc.once('exit', (code, signal) => {
          setTimeout(() => done({ code, signal }), 2000).unref();
        });
        proc.once('close', (code, signal) => done({ code, signal }));
        proc.once('error', () => done({ code: null, signal: null }));
      }),
    };
    child.log.on('error', () => undefined); // a log that cannot be written must not stop the cluster
    children.push(child);
    for (const stream of [proc.stdout, proc.stderr]) {
      stream?.pipe(child.log, { end: false });
      if (stream) {
        createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
          if (isErrorLine(line)) child.recent = [...child.recent.slice(-49), line];
          for (const listener of child.onLine) listener(line);
        });
      }
    }
    proc.once('error', (error) => {
      failStartup(new CliError(`cannot start ${name}: ${error.message}`));
    });
    void child.exited.then((exit) => {
      child.exit = exit;
      if (stopping) return;
      const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
      const last = failureLine(child.recent);
      const why = last ? `: ${last}` : ` (log: ${logFile})`;
      if (ready) log(`${name} (pid ${child.pid}) exited unexpectedly with ${how}${why}`);
      else failStartup(new CliError(`${name} exited with ${how} while starting${why}`));
    });
    return child;
  };

  const within = <T>(work: Promise<T>, what: () => string): Promise<T> => {
    const aborted = new Promise<never>((_, reject) => {
      const onAbort = (): void => reject(new CliError('interrupted while starting the cluster'));
      if (options.signal?.aborted) onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CliError(what())), Math.max(0, deadline - Date.now()));
    });
    return Promise.race([work, startupFailed, aborted, timeout]).finally(() => clearTimeout(timer));
  };

  const listening = (child: Running, message: string): Promise<string> =>
    new Promise<string>((done) => {
      child.onLine.push((line) => {
        const address = listeningAddress(line, message);
        if (address && !child.address) {
          child.address = address;
          done(address);
        }
      });
    });

  try {
    const coordinator = launch('coordinator', 'coordinator', coordinatorApp, [
      '--host',
      options.host,
      '--port',
      String(options.port),
      '--store',
      store,
      '--db',
      db,
      ...(options.forgetWindowMs ? ['--forget-window-ms', String(options.forgetWindowMs)] : []),
    ]);
    log(`coordinator: started (pid ${coordinator.pid}), log ${coordinator.logFile}`);
    const address = connectableAddress(
      await within(
        listening(coordinator, 'coordinator listening'),
        () =>
          `the coordinator did not log "coordinator listening" within ${timeoutMs / 1000} s (log: ${coordinator.logFile})`,
      ),
    );
    log(`coordinator: listening on ${coordinator.address}`);

    const workers = Array.from({ length: options.workers }, (_, i) =>
      launch(`worker-${i + 1}`, 'worker', workerApp!, [
        '--coordinator',
        address,
        '--store',
        store,
        '--name',
        `worker-${i + 1}`,
        '--port',
        '0',
      ]),
    );
    await within(
      Promise.all(workers.map((w) => listening(w, 'worker listening'))),
      () =>
        `not every worker logged "worker listening" within ${timeoutMs / 1000} s: ` +
        workers
          .filter((w) => !w.address)
          .map((w) => `${w.name} (log: ${w.logFile})`)
          .join(', '),
    );
    let alive = 0;
    await within(
      (async () => {
        const client = connectCoordinator(address);
        try {
          for (;;) {
            try {
              const { workers: registered } = await callUnary(
                client,
                client.listWorkers,
                {},
                { deadlineMs: Math.max(500, Math.min(2000, deadline - Date.now())) },
              );
              alive = registered.filter((w) => w.state === WorkerState.WORKER_STATE_ALIVE).length;
              if (alive >= options.workers) return;
            } catch {
              // not answering yet: try again
            }
            if (stopping) return;
            await sleep(200);
          }
        } finally {
          client.close();
        }
      })(),
      () =>
        `only ${alive} of ${options.workers} workers registered with the coordinator within ${timeoutMs / 1000} s (logs: ${logDir})`,
    );
    ready = true;
    log(`cluster ready: coordinator ${address}, ${counted(options.workers, 'worker')} alive`);
    return {
      address,
      store,
      db,
      logDir,
      children: children.map(
        ({ name, role, pid, address: at, logFile, process: p, exited }): ClusterChild => ({
          name,
          role,
          pid,
          address: at,
          logFile,
          process: p,
          exited,
        }),
      ),
      stop,
      kill,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
