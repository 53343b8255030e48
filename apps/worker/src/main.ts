#!/usr/bin/env node
import { CommanderError } from 'commander';
import { ConfigError, parseWorkerConfig, type WorkerConfig } from './config';
import { createLogger } from './logger';
import { type RunningWorker, startWorker, workerVersion } from './worker';

/**
 * `node apps/worker/dist/main.js [--port N] [--coordinator host:port] [--store URL] …`: serves
 * the Worker service until SIGTERM or SIGINT, then stops gracefully and exits 0. A bad flag or
 * environment value is one `lethe-worker: error: …` line on stderr and exit code 2.
 */
async function main(): Promise<void> {
  let config: WorkerConfig;
  try {
    config = parseWorkerConfig(process.argv.slice(2), process.env, workerVersion());
  } catch (error) {
    if (error instanceof CommanderError && error.exitCode === 0) return;
    if (error instanceof ConfigError || error instanceof CommanderError) {
      const message = error.message.replace(/^error: /, '');
      process.stderr.write(`lethe-worker: error: ${message}\n`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }

  const logger = createLogger(process.env);
  let worker: RunningWorker | undefined;
  let exiting = false;
  const exit = (code: number, reason: string): void => {
    if (exiting) {
      logger.warn({ reason }, 'second request to stop: exiting now');
      process.exit(1);
    }
    exiting = true;
    logger.info({ reason }, 'shutting down');
    (worker?.stop() ?? Promise.resolve()).then(
      () => process.exit(code),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => exit(0, 'SIGTERM'));
  process.on('SIGINT', () => exit(0, 'SIGINT'));

  try {
    worker = await startWorker(config, {
      logger,
      onFatal: () => exit(1, 'registration rejected'),
    });
  } catch (error) {
    logger.fatal({ err: error }, 'worker failed to start');
    process.exit(1);
  }
}

void main();
