import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseDatasetSpec } from '@lethe/data';
import { MAX_FORGET_WINDOW_MS } from '@lethe/sisa';
import {
  CLUSTER_FILE,
  type ClusterFile,
  isProcessAlive,
  readClusterFile,
  removeClusterFile,
  writeClusterFile,
} from '../cluster/cluster-file';
import { type EmbeddedCluster, startEmbeddedCluster } from '../cluster/embedded-cluster';
import { action, CliError } from '../terminal/errors';
import { nonNegativeInt } from '../terminal/option-parsers';
import { onStopSignals } from '../terminal/signals';
import { table } from '../terminal/tables';

interface UpFlags {
  workers: number;
  store: string;
  port: number;
  host: string;
  data?: string;
  json: boolean;
  forgetWindow: number;
}

/** A duration like `90s`, `10m`, `1h` or `0` as milliseconds, at most the coordinator's bound. */
export function forgetWindow(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new CliError(`expected a duration such as 0, 90s, 10m or 1h, got ${value}`);
  const ms = Math.round(Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!);
  if (ms > MAX_FORGET_WINDOW_MS) throw new CliError(`the forget window is at most a day (24h)`);
  return ms;
}

/**
 * The embedded cluster runs plaintext and open on this machine: TLS and auth settings in the
 * environment (meant for a real deployment, or for the CLI as a client) are blanked for its
 * processes, which read an empty value as unset.
 */
const PLAINTEXT_ENV: NodeJS.ProcessEnv = {
  LETHE_TLS_CERT: '',
  LETHE_TLS_KEY: '',
  LETHE_TLS_CA: '',
  LETHE_AUTH_FILE: '',
};

function printReady(cluster: EmbeddedCluster, clusterFile: string, data?: string): void {
  console.log(
    table([
      ['process', 'pid', 'address', 'log'],
      ...cluster.children.map((c) => [c.name, c.pid, c.address, c.logFile]),
    ]),
  );
  console.log(`store ${cluster.store}; cluster file ${clusterFile}`);
  if (data) console.log(`data ${data}`);
  console.log(
    `ready: npx lethe status, or npx lethe train --coordinator ${cluster.address} --data …; Ctrl-C stops the cluster`,
  );
}

function port(value: string): number {
  const n = nonNegativeInt(value);
  if (n > 65_535) throw new CliError('expected a port 0..65535');
  return n;
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description(
      'run a coordinator and N workers on this machine over a local store, in the foreground (Ctrl-C stops them)',
    )
    .option('--workers <N>', 'worker processes', nonNegativeInt, 2)
    .option('--store <dir>', 'local store directory', '.lethe/store')
    .option('--port <P>', 'coordinator port (0: any free port)', port, 7070)
    .option('--host <host>', 'coordinator host to listen on', '127.0.0.1')
    .option('--data <spec>', 'dataset to record as the default in .lethe/cluster.json')
    .option(
      '--forget-window <duration>',
      'sisa forget requests arriving within this window (e.g. 10m, 1h, 90s; a bare number is seconds; at most 24h) share one replay, each with its own receipt (default 0: at once)',
      forgetWindow,
      0,
    )
    .option(
      '--json',
      'once ready, print the cluster (as in .lethe/cluster.json) as JSON on stdout',
      false,
    )
    .action(
      action(async (flags: UpFlags) => {
        if (flags.data) parseDatasetSpec(flags.data); // a malformed spec fails here, in one line
        const clusterFile = resolve(CLUSTER_FILE);
        const existing = readClusterFile(clusterFile);
        if (existing && existing.pid !== process.pid && isProcessAlive(existing.pid)) {
          throw new CliError(
            `a cluster is already running from this directory (lethe up pid ${existing.pid}, coordinator ${existing.coordinator}); stop it first`,
          );
        }
        const say = (message: string): void => {
          process.stderr.write(`${message}\n`);
        };

        // Signals: the first stops the processes gracefully, a second kills them.
        const interrupted = new AbortController();
        let cluster: Awaited<ReturnType<typeof startEmbeddedCluster>> | undefined;
        let finished: () => void = () => undefined;
        const done = new Promise<void>((resolveDone) => {
          finished = resolveDone;
        });
        const signals = onStopSignals(
          (signal) => {
            say(`${signal}: stopping the workers, then the coordinator…`);
            interrupted.abort();
            if (cluster) void cluster.stop().then(finished);
          },
          (signal) => {
            say(`${signal} again: killing the cluster processes`);
            cluster?.kill();
          },
        );
        try {
          try {
            cluster = await startEmbeddedCluster({
              workers: flags.workers,
              store: flags.store,
              port: flags.port,
              host: flags.host,
              forgetWindowMs: flags.forgetWindow,
              log: say,
              signal: interrupted.signal,
              env: PLAINTEXT_ENV,
            });
          } catch (error) {
            if (interrupted.signal.aborted) return;
            throw error;
          }
          const workers = cluster.children.filter((c) => c.role === 'worker');
          const running: ClusterFile = {
            coordinator: cluster.address,
            pid: process.pid,
            workers: workers.map((w) => ({ name: w.name, pid: w.pid, address: w.address })),
            store: cluster.store,
            logs: cluster.logDir,
            startedAt: new Date().toISOString(),
            ...(flags.data ? { data: flags.data } : {}),
          };
          await writeClusterFile(clusterFile, running);
          if (flags.json) {
            process.stdout.write(`${JSON.stringify({ ...running, clusterFile }, null, 2)}\n`);
          } else {
            printReady(cluster, clusterFile, flags.data);
          }
          const all = cluster;
          void Promise.all(all.children.map((c) => c.exited)).then(() => {
            if (signals.count > 0) return;
            say('every cluster process has exited; stopping');
            process.exitCode = 1;
            finished();
          });
          await done;
          await all.stop();
          say('cluster stopped');
        } finally {
          removeClusterFile(clusterFile, process.pid);
          signals.dispose();
        }
      }),
    );
}
