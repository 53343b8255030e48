import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { RegistryClient, SubmitForgetRequest, CoordinatorClient } from '@lethe/proto';
import { callUnary } from '@lethe/rpc';
import { routingHealth } from '@lethe/metrics';
import { type JsonValue, LocalDirStore, ManifestStore } from '@lethe/store';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadCoordinatorConfig } from '../src/config/coordinator-config';
import { CoordinatorModule } from '../src/coordinator.module';
import { GrpcServerService } from '../src/grpc/grpc-server.service';
import { JobsService } from '../src/jobs/jobs.service';
import { MetricsService } from '../src/metrics/metrics.service';
import { ModelState } from '../src/model/current-model';
import { freePort } from './support/ports';

const dir = mkdtempSync(join(tmpdir(), 'lethe-coordinator-metrics-'));
const storeDir = join(dir, 'store');
const log = pino({ level: 'silent' });
let app: INestApplicationContext;
let metricsAddress: string;
const clients: grpc.Client[] = [];

const scrape = async (): Promise<string> => {
  const response = await fetch(`http://${metricsAddress}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
};

/** The value of one sample line, e.g. `lethe_workers{state="alive"}`. */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

beforeAll(async () => {
  const port = await freePort();
  const config = loadCoordinatorConfig(
    ['--port', '0', '--store', storeDir, '--db', join(dir, 'coordinator.sqlite')],
    { LETHE_METRICS_PORT: String(port), LETHE_HEARTBEAT_TIMEOUT_MS: '60000' },
  );
  expect(config.metricsPort).toBe(port);
  app = await NestFactory.createApplicationContext(CoordinatorModule.forRoot(config, log), {
    logger: false,
  });
  await app.init();
  metricsAddress = app.get(MetricsService).address!;
  expect(metricsAddress).toBe(`127.0.0.1:${port}`);
});

afterAll(async () => {
  clients.forEach((c) => c.close());
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('coordinator metrics', () => {
  it('serves the Prometheus text format at GET /metrics', async () => {
    const text = await scrape();
    for (const [name, type] of [
      ['lethe_training_steps_total', 'counter'],
      ['lethe_training_images_total', 'counter'],
      ['lethe_step_seconds', 'histogram'],
      ['lethe_step_rpc_seconds', 'histogram'],
      ['lethe_forget_queue_length', 'gauge'],
      ['lethe_jobs_total', 'counter'],
      ['lethe_workers', 'gauge'],
      ['lethe_worker_rpc_seconds', 'histogram'],
      ['lethe_forget_request_seconds', 'histogram'],
      ['process_cpu_seconds_total', 'counter'],
      ['nodejs_heap_size_used_bytes', 'gauge'],
    ]) {
      expect(text).toContain(`# TYPE ${name} ${type}\n`);
    }
    expect(sample(text, 'lethe_training_steps_total')).toBe(0);
    expect(sample(text, 'lethe_forget_queue_length')).toBe(0);
    expect(sample(text, 'lethe_workers{state="alive"}')).toBe(0);
  });

  it('counts a worker registered through the Registry service', async () => {
    const address = app.get(GrpcServerService).address!;
    const registry = new RegistryClient(address, grpc.credentials.createInsecure());
    clients.push(registry);
    const { workerId } = await callUnary(registry, registry.register, {
      address: '127.0.0.1:1',
      name: 'fake',
      version: 'test',
      capacity: { maxExperts: 1 },
    });
    let text = await scrape();
    expect(sample(text, 'lethe_workers{state="alive"}')).toBe(1);
    expect(sample(text, 'lethe_workers{state="lost"}')).toBe(0);
    await callUnary(registry, registry.deregister, { workerId });
    text = await scrape();
    expect(sample(text, 'lethe_workers{state="alive"}')).toBe(0);
    expect(sample(text, 'lethe_workers{state="lost"}')).toBe(1);
  });

  it('counts jobs by kind and terminal state', async () => {
    // A model card without weights: enough to accept a forget request, whose job then fails at
    // once because its dataset does not exist.
    await new ManifestStore(new LocalDirStore(storeDir)).update((draft) => {
      draft.attributes['model'] = { classes: ['square', 'disc', 'cross'], config: { experts: 2 } };
      draft.attributes['training'] = { mode: 'joint', dataset: `cifar10:${dir}/no-data`, seed: 0 };
    });
    const api = new CoordinatorClient(
      app.get(GrpcServerService).address!,
      grpc.credentials.createInsecure(),
    );
    clients.push(api);
    const accepted = await callUnary(
      api,
      api.submitForget,
      SubmitForgetRequest.fromPartial({
        requestId: 'metrics-1',
        target: { $case: 'className', value: 'disc' },
        epochs: 1,
      }),
    );
    const jobs = app.get(JobsService);
    const deadline = Date.now() + 10_000;
    while (jobs.get(accepted.job!.jobId)?.state !== 'failed' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const text = await scrape();
    expect(sample(text, 'lethe_jobs_total{kind="forget",state="failed"}')).toBe(1);
    expect(
      sample(text, 'lethe_forget_request_seconds_count{method="targeted",outcome="failed"}'),
    ).toBe(1);
    expect(sample(text, 'lethe_forget_queue_length')).toBe(0);
  });

  it("exports the published model's routing health, and NaN for a model without", async () => {
    const health = routingHealth(
      [
        [9, 1, 0],
        [0, 8, 2],
        [1, 0, 9],
      ],
      1,
    );
    await new ManifestStore(new LocalDirStore(storeDir)).update((draft) => {
      draft.attributes['model'] = { classes: ['a', 'b', 'c'], config: { experts: 3, topK: 1 } };
      draft.attributes['training'] = {
        mode: 'joint',
        dataset: 'cifar10:/nowhere',
        seed: 0,
        routingHealth: health as unknown as JsonValue,
      };
    });
    const state = new ModelState(new LocalDirStore(storeDir));
    const metrics = app.get(MetricsService);
    metrics.setRoutingHealth(await state.routingHealth((await state.current())!));
    let text = await scrape();
    expect(sample(text, 'lethe_routing_collateral_ratio')).toBeCloseTo(health.meanCollateral / 100);
    health.utilisation.forEach((u, e) =>
      expect(sample(text, `lethe_expert_utilisation_ratio{expert="${e}"}`)).toBeCloseTo(u),
    );
    expect(sample(text, 'lethe_dead_experts')).toBe(0);
    metrics.setRoutingHealth(undefined);
    text = await scrape();
    expect(sample(text, 'lethe_dead_experts')).toBeNaN();
    expect(sample(text, 'lethe_expert_utilisation_ratio{expert="0"}')).toBeUndefined();
  });

  it('answers 404 to anything but GET /metrics', async () => {
    for (const [method, path] of [
      ['GET', '/'],
      ['GET', '/metrics/x'],
      ['POST', '/metrics'],
    ] as const) {
      const response = await fetch(`http://${metricsAddress}${path}`, { method });
      expect(response.status, `${method} ${path}`).toBe(404);
      await response.text();
    }
  });
});

describe('metricsPort', () => {
  it('is 0 by default: no metrics server', async () => {
    const config = loadCoordinatorConfig([], {});
    expect(config.metricsPort).toBe(0);
    const metrics = new MetricsService(config, log);
    await metrics.onApplicationBootstrap();
    expect(metrics.address).toBeUndefined();
    await metrics.onApplicationShutdown();
  });

  it('is validated like the other keys', () => {
    expect(() => loadCoordinatorConfig(['--metrics-port', '70000'], {})).toThrow(ConfigError);
    expect(() => loadCoordinatorConfig([], { LETHE_METRICS_PORT: 'http' })).toThrow(
      /^invalid metricsPort \(--metrics-port \/ LETHE_METRICS_PORT\)/,
    );
  });

  it('closes its server when the application shuts down', async () => {
    const port = await freePort();
    const config = loadCoordinatorConfig(['--metrics-port', String(port)], {});
    const metrics = new MetricsService(config, log);
    await metrics.onApplicationBootstrap();
    expect(metrics.address).toBe(`127.0.0.1:${port}`);
    await metrics.onApplicationShutdown();
    expect(metrics.address).toBeUndefined();
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });
});
