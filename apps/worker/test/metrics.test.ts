import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { CIFAR10_STATS } from '@lethe/data';
import { Split, toFloat32Tensor, WorkerClient, ExpertCopy } from '@lethe/proto';
import { callUnary } from '@lethe/rpc';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWorkerConfig } from '../src/config';
import { type RunningWorker, startWorker } from '../src/worker';
import { quietLogger, workerConfig, writeShapes } from './fixtures';

const INDICES = [0, 5, 7, 3];
let dir: string;
let worker: RunningWorker;
let client: WorkerClient;
const logLines: Record<string, unknown>[] = [];

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const scrape = async (): Promise<string> => {
  const response = await fetch(`http://${worker.metricsAddress!}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
};

const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lethe-worker-metrics-'));
  const dataDir = writeShapes(join(dir, 'data'), 8, 2);
  const port = await freePort();
  const capture = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        logLines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  worker = await startWorker(
    parseWorkerConfig(['--max-experts', '2', '--store', join(dir, 'store')], {
      LETHE_METRICS_PORT: String(port),
    }),
    { logger: pino({ level: 'info' }, capture) },
  );
  expect(worker.metricsAddress).toBe(`127.0.0.1:${port}`);
  client = new WorkerClient(worker.address, grpc.credentials.createInsecure());
  await callUnary(client, client.assignExperts, {
    copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
    model: {
      preset: 'tiny',
      numClasses: 4,
      inputShape: [32, 32, 3],
      normalisation: { mean: [...CIFAR10_STATS.mean], std: [...CIFAR10_STATS.std] },
      experts: 2,
      seed: 1,
    },
    experts: [{ expertId: 0, lastStepId: 0 }],
    replaceAll: false,
  });
  await callUnary(client, client.loadDataset, {
    key: 'train',
    dataset: {
      source: { $case: 'uri', value: `cifar10:${dataDir}` },
      split: Split.SPLIT_TRAIN,
      limit: 0,
    },
  });
});

afterAll(async () => {
  client?.close();
  await worker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('worker metrics', () => {
  it('serves the metric names, with experts held', async () => {
    const text = await scrape();
    for (const [name, type] of [
      ['lethe_worker_forward_seconds', 'histogram'],
      ['lethe_worker_backward_seconds', 'histogram'],
      ['lethe_worker_experts', 'gauge'],
      ['lethe_worker_inflight_calls', 'gauge'],
      ['process_cpu_seconds_total', 'counter'],
    ]) {
      expect(text).toContain(`# TYPE ${name} ${type}\n`);
    }
    expect(sample(text, 'lethe_worker_experts')).toBe(1);
    expect(sample(text, 'lethe_worker_inflight_calls')).toBe(0);
    expect(sample(text, 'lethe_worker_forward_seconds_count')).toBe(0);
  });

  it('observes Forward and Backward compute time', async () => {
    await callUnary(client, client.forward, {
      copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
      stepId: 1,
      expertId: 0,
      datasetKey: 'train',
      indices: INDICES,
      training: true,
      frozenBatchNorm: false,
    });
    await callUnary(client, client.backward, {
      stepId: 1,
      expertId: 0,
      logitGradients: toFloat32Tensor(new Float32Array(INDICES.length * 4).fill(0.1), [
        INDICES.length,
        4,
      ]),
      learningRate: 0.01,
      weightDecay: 0,
    });
    const text = await scrape();
    expect(sample(text, 'lethe_worker_forward_seconds_count')).toBe(1);
    expect(sample(text, 'lethe_worker_backward_seconds_count')).toBe(1);
    expect(sample(text, 'lethe_worker_forward_seconds_sum')).toBeGreaterThan(0);
    expect(sample(text, 'lethe_worker_backward_seconds_sum')).toBeGreaterThan(0);
  });

  it('answers 404 to anything but GET /metrics', async () => {
    for (const [method, path] of [
      ['GET', '/'],
      ['POST', '/metrics'],
    ] as const) {
      const response = await fetch(`http://${worker.metricsAddress!}${path}`, { method });
      expect(response.status, `${method} ${path}`).toBe(404);
      await response.text();
    }
  });

  it('logs a failed call with its method and expert id', async () => {
    const error = await callUnary(client, client.forward, {
      copy: ExpertCopy.EXPERT_COPY_UNSPECIFIED,
      stepId: 0,
      expertId: 1,
      datasetKey: 'train',
      indices: INDICES,
      training: false,
      frozenBatchNorm: false,
    }).catch((e: grpc.ServiceError) => e);
    expect(error).toMatchObject({ code: grpc.status.NOT_FOUND });
    expect(logLines.find((l) => l['msg'] === 'rpc failed')).toMatchObject({
      method: 'Forward',
      expertId: 1,
      code: 'NOT_FOUND',
    });
  });

  it('is off by default and closes with the worker', async () => {
    const quiet = await startWorker(workerConfig(), { logger: quietLogger() });
    expect(quiet.metricsAddress).toBeUndefined();
    await quiet.stop();
    const port = await freePort();
    const other = await startWorker(workerConfig({ metricsPort: port }), {
      logger: quietLogger(),
    });
    expect((await fetch(`http://${other.metricsAddress!}/metrics`)).status).toBe(200);
    await other.stop();
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });
});
