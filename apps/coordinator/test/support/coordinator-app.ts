import 'reflect-metadata';
import { Writable } from 'node:stream';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import pino from 'pino';
import { loadCoordinatorConfig } from '../../src/config/coordinator-config';
import type { JobRecord } from '../../src/contract/job-record';
import { CoordinatorModule } from '../../src/coordinator.module';
import { JobsService } from '../../src/jobs/jobs.service';
import { WorkersService } from '../../src/workers/workers.service';
import { until } from './polling';

/** One structured log line of the coordinator (job logs carry their job id). */
export interface LogLine {
  msg: string;
  jobId?: string;
}

/** Heartbeats fast enough that a test sees a worker join or leave within seconds. */
const HEARTBEATS = { LETHE_HEARTBEAT_INTERVAL_MS: '200', LETHE_HEARTBEAT_TIMEOUT_MS: '3000' };

/**
 * A coordinator (the Nest application, initialised) configured by `args` as its command line,
 * whose log lines are parsed into `lines` so a test can check what it reported.
 */
export async function startCoordinator(
  args: string[],
  lines: LogLine[],
): Promise<INestApplicationContext> {
  const config = loadCoordinatorConfig(args, HEARTBEATS);
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n').filter(Boolean)) {
        lines.push(JSON.parse(text) as LogLine);
      }
      done();
    },
  });
  return NestFactory.createApplicationContext(
    CoordinatorModule.forRoot(config, pino({ level: 'info' }, sink)),
    { logger: false },
  );
}

/** Waits until `count` workers are registered and alive. */
export async function workersJoined(app: INestApplicationContext, count: number): Promise<void> {
  await until(`${count} workers`, () => app.get(WorkersService).registry.live().length >= count);
}

/** The job once it has succeeded, failed or been cancelled. */
export function jobEnded(app: INestApplicationContext, jobId: string): Promise<JobRecord> {
  return until('the job to end', () => {
    const job = app.get(JobsService).get(jobId)!;
    return ['succeeded', 'failed', 'cancelled'].includes(job.state) ? job : undefined;
  });
}
