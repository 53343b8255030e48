#!/usr/bin/env node
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { initEngine } from '@lethe/engine';
import { CommanderError } from 'commander';
import pino from 'pino';
import { ConfigError, loadCoordinatorConfig } from './config/coordinator-config';
import { CoordinatorModule } from './coordinator.module';

async function main(): Promise<void> {
  let config;
  try {
    config = loadCoordinatorConfig(process.argv.slice(2));
  } catch (error) {
    // --help: commander printed it.
    if (error instanceof CommanderError && error.exitCode === 0) return;
    if (error instanceof ConfigError) {
      process.stderr.write(`lethe-coordinator: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  // Defence in depth: no code logs these, and if some did, the values would not reach the log.
  const log = pino({
    level: config.logLevel,
    base: { service: 'coordinator' },
    redact: {
      paths: ['authorization', '*.authorization', 'token', '*.token', '*.secretKey', '*.password'],
      censor: 'REDACTED',
    },
  });
  const engine = await initEngine({ log: (line) => log.info(line) });
  log.info(
    { engine: engine.engine, store: redact(config.store), db: config.db },
    'coordinator starting',
  );
  const app = await NestFactory.createApplicationContext(CoordinatorModule.forRoot(config, log), {
    logger: false,
  });
  await app.init();
  // Not Nest's enableShutdownHooks: it re-raises the signal after closing (exit 143), and a
  // supervisor should see a drained stop as a clean one.
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs: config.shutdownGraceMs }, 'coordinator stopping');
    setTimeout(() => {
      log.error({ graceMs: config.shutdownGraceMs }, 'coordinator did not stop within its grace');
      process.exit(1);
    }, config.shutdownGraceMs).unref();
    app.close().then(
      () => {
        log.info('coordinator stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'coordinator stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** Store URLs may carry credentials in their query; logs never do. */
function redact(url: string): string {
  return url.replace(/(access|secret|key|token|password)[^&=]*=[^&]*/gi, '$1=***');
}

main().catch((error: unknown) => {
  process.stderr.write(
    `lethe-coordinator: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
