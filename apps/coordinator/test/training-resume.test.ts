import 'reflect-metadata';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext } from '@nestjs/common';
import { makeSyntheticDataset, writeCifar10 } from '@lethe/data';
import { StartTrainingRequest, TrainingMode } from '@lethe/proto';
import { LocalDirStore, type Manifest, ManifestStore } from '@lethe/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobsService } from '../src/jobs/jobs.service';
import { TrainingService } from '../src/services/training.service';
import { jobEnded, type LogLine, startCoordinator, workersJoined } from './support/coordinator-app';
import { until } from './support/polling';
import { freePort } from './support/ports';
import { startWorker } from './support/worker-processes';

/**
 * A joint training stopped after its first epoch's checkpoint by closing the coordinator (the
 * Nest application, as a restart does) resumes in a new coordinator on the same store and
 * database, and publishes exactly the model an uninterrupted run with the same seed publishes:
 * the same router, expert and routing-lineage objects (wasm runs one thread in a fixed order,
 * so bit for bit) and the same per-epoch losses. Two real worker processes host the experts
 * and keep running across the restart, as they would.
 */

const EPOCHS = 3;
const dir = mkdtempSync(join(tmpdir(), 'lethe-resume-'));
const storeDir = join(dir, 'store');
const store = new LocalDirStore(storeDir);
let data: string;
let port: number;
const workers: ChildProcess[] = [];
/** Every line the coordinators logged, job logs included. */
const lines: LogLine[] = [];
let app: INestApplicationContext | undefined;
/** The model of the uninterrupted run. */
let whole: Manifest;
const PARTS = ['router', 'expert/0', 'expert/1', 'expert/2', 'lineage/routing'];

const coordinator = (): Promise<INestApplicationContext> =>
  startCoordinator(
    [
      '--port',
      String(port),
      '--store',
      storeDir,
      '--db',
      join(dir, 'coordinator.sqlite'),
      '--checkpoint-every-steps',
      '2',
    ],
    lines,
  );

function spawnWorker(name: string): ChildProcess {
  const child = startWorker({ name, port, storeDir });
  workers.push(child);
  return child;
}

const request = (requestId: string): StartTrainingRequest =>
  StartTrainingRequest.fromPartial({
    requestId,
    mode: TrainingMode.TRAINING_MODE_JOINT,
    dataset: { source: { $case: 'uri', value: data } },
    preset: 'tiny',
    experts: 3,
    topK: 2,
    epochs: EPOCHS,
    batchSize: 24,
    learningRate: 0.003,
    augment: true,
    seed: 11,
  });

async function trained(a: INestApplicationContext, id: string): Promise<Manifest> {
  const job = await jobEnded(a, id);
  expect(job.error).toBeUndefined();
  expect(job.state).toBe('succeeded');
  return new ManifestStore(store).readRevision(job.manifestRevision!);
}

beforeAll(async () => {
  const train = makeSyntheticDataset({ perClass: 24, split: 'train', seed: 4, classes: 4 });
  const test = makeSyntheticDataset({ perClass: 6, split: 'test', seed: 4, classes: 4 });
  data = `cifar10:${writeCifar10(dir, { train, test })}`;
  port = await freePort();
  app = await coordinator();
  spawnWorker('resume-1');
  spawnWorker('resume-2');
  await workersJoined(app, 2);
});

afterAll(async () => {
  await app?.close();
  for (const w of workers) w.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

describe('joint training across a coordinator restart', () => {
  it('resumes from its epoch checkpoint and publishes the uninterrupted run’s model', async () => {
    whole = await trained(
      app!,
      (await app!.get(TrainingService).start(request('uninterrupted'))).jobId,
    );

    const { jobId } = await app!.get(TrainingService).start(request('interrupted'));
    await until('the first epoch checkpoint', () =>
      lines.find((l) => l.jobId === jobId && l.msg.startsWith(`checkpoint of epoch 1/${EPOCHS}`)),
    );
    expect(
      (await store.list('training/checkpoints/')).map((o) => o.key),
      'stored under the request id',
    ).toEqual(['training/checkpoints/request/interrupted.json']);
    await app!.close();
    app = undefined;
    expect(lines.some((l) => l.jobId === jobId && l.msg === 'job interrupted by shutdown')).toBe(
      true,
    );

    app = await coordinator();
    const resumed = await trained(app, jobId);
    const resumedAt = lines.find((l) => l.jobId === jobId && l.msg.startsWith('resuming from'));
    expect(resumedAt?.msg).toMatch(/^resuming from the checkpoint of epoch [12]\/3/);
    const from = Number(/epoch (\d)\//.exec(resumedAt!.msg)![1]);
    // After the restart only the epochs past the checkpoint were trained.
    const after = lines.slice(lines.indexOf(resumedAt!));
    for (let e = 1; e <= EPOCHS; e++) {
      expect(
        after.some((l) => l.jobId === jobId && l.msg.startsWith(`epoch ${e}/${EPOCHS}:`)),
        `epoch ${e} after the restart`,
      ).toBe(e > from);
    }

    // Same request, same seed: the same model, object for object.
    for (const part of PARTS) {
      expect(resumed.objects[part]!.sha256, part).toBe(whole.objects[part]!.sha256);
    }
    const history = (m: Manifest) =>
      (m.attributes['training'] as { history: { loss: number; accuracy: number }[] }).history.map(
        (h) => [h.loss, h.accuracy],
      );
    expect(history(resumed)).toEqual(history(whole));
    expect(
      (resumed.attributes['training'] as { distributed: { resumedFromEpoch: number } }).distributed
        .resumedFromEpoch,
    ).toBe(from);
    // Published: the checkpoint is gone, and the objects only it used.
    expect(await store.list('training/checkpoints/')).toEqual([]);
  });

  it('resumes a cancelled job’s checkpoint when its request id is submitted again', async () => {
    const training = app!.get(TrainingService);
    const first = await training.start(request('cancelled'));
    await until('the first epoch checkpoint', () =>
      lines.find(
        (l) => l.jobId === first.jobId && l.msg.startsWith(`checkpoint of epoch 1/${EPOCHS}`),
      ),
    );
    app!.get(JobsService).cancel(first.jobId);
    await until(
      'the cancellation',
      () => app!.get(JobsService).get(first.jobId)!.state === 'cancelled',
    );
    // A new job (a later sequence number, so other step ids) under the same request id.
    const again = await training.start(request('cancelled'));
    expect(again.jobId).not.toBe(first.jobId);
    const resumed = await trained(app!, again.jobId);
    expect(
      lines.find((l) => l.jobId === again.jobId && l.msg.startsWith('resuming from'))?.msg,
    ).toMatch(new RegExp(`written by ${first.jobId}`));
    for (const part of PARTS) {
      expect(resumed.objects[part]!.sha256, part).toBe(whole.objects[part]!.sha256);
    }
    expect(await store.list('training/checkpoints/')).toEqual([]);
  });
});
