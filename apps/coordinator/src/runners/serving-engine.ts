import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { limitTrainingSet } from '@lethe/data';
import { deserializeParameters, MoEModel } from '@lethe/model';
import {
  encodeFloat32,
  type EvaluateResponse,
  ExpertCopy,
  type ImageTensor,
  type PredictResponse,
  Split,
} from '@lethe/proto';
import { cancelled, failedPrecondition, invalidArgument, notFound } from '@lethe/rpc';
import { getVerified, type ObjectStore } from '@lethe/store';
import type { Logger } from 'pino';
import type { EvaluateSpec } from '../contract/request-validation';
import { evaluateDistributed, expertLogitsFrom, fetchExpertLogits } from './distributed-inference';
import type { CurrentModel, ModelState } from '../model/current-model';
import { modelSpecOf } from '../model/model-spec';
import type { ExpertDirectory } from '../workers/expert-directory';
import { ExpertSession } from '../workers/expert-session';

export interface ServingDeps {
  store: ObjectStore;
  models: ModelState;
  directory: ExpertDirectory;
  log: Logger;
  workerDeadlineMs: number;
  onRpc?: (method: string, seconds: number) => void;
}

/** One published revision, ready to answer: its router here, its experts' serving copies. */
interface Served {
  current: CurrentModel;
  model: MoEModel;
  session: ExpertSession;
}

/**
 * Predict and Evaluate from the published manifest revision, in an engine thread. The router of
 * the revision is loaded here once; experts answer from the workers' serving copies (loaded with
 * the revision's stored weights), never from the copies a job is training. Each call reads the
 * manifest pointer: when a newer revision is published, calls still running on the old one
 * finish on it, the next call switches, and no call ever mixes two revisions.
 */
export class ServingEngine {
  private served: Served | undefined;
  private inflight = 0;
  private drained: (() => void) | undefined;
  private switching: Promise<void> | undefined;

  constructor(private readonly deps: ServingDeps) {}

  async predict(images: readonly ImageTensor[], signal: AbortSignal): Promise<PredictResponse> {
    return this.withPublished(async ({ current, model, session }) => {
      const [h, w, c] = current.card.config.inputShape;
      images.forEach((image, i) => {
        if (image.height !== h || image.width !== w || image.channels !== c) {
          throw invalidArgument(
            `images[${i}] is ${image.height}x${image.width}x${image.channels}; the model takes ${h}x${w}x${c}`,
          );
        }
      });
      const pixels = normalisePixels(images, current.card.normalisation, h * w * c);
      const x = tf.tensor4d(pixels, [images.length, h, w, c]);
      const classes = current.card.config.numClasses;
      try {
        const assignments = model.route(x);
        const fetched = await fetchExpertLogits(assignments, async (e, positions) => {
          const response = await session.call(
            e,
            (client) => client.predict,
            {
              expertId: e,
              images: Array.from(positions, (p) => images[p]!),
              copy: ExpertCopy.EXPERT_COPY_SERVING,
            },
            { label: 'Predict' },
          );
          return response!.logits!;
        });
        if (signal.aborted) throw cancelled('the call was cancelled');
        const { probabilities, gates } = tf.tidy(() => {
          const { logits, routing } = model.forward(x, {
            expertLogits: expertLogitsFrom(fetched, classes),
            suppressClasses: current.card.suppressClasses ?? [],
          });
          return {
            probabilities: tf.softmax(logits).dataSync() as Float32Array,
            gates: routing.gates.dataSync() as Float32Array,
          };
        });
        const experts = model.config.experts;
        return {
          probabilities: { data: encodeFloat32(probabilities), shape: [images.length, classes] },
          predictions: images.map((_, i) => {
            const row = probabilities.subarray(i * classes, (i + 1) * classes);
            let best = 0;
            for (let k = 1; k < classes; k++) if (row[k]! > row[best]!) best = k;
            const chosen = Array.from({ length: experts }, (_, e) => e)
              .filter((e) => gates[i * experts + e]! > 0)
              .sort((a, b) => gates[i * experts + b]! - gates[i * experts + a]!);
            return {
              classIndex: best,
              className: current.card.classes[best]!,
              probability: row[best]!,
              experts: chosen,
              gates: chosen.map((e) => gates[i * experts + e]!),
            };
          }),
          classes: current.card.classes,
          manifestRevision: current.manifest.revision,
        };
      } finally {
        x.dispose();
      }
    });
  }

  async evaluate(order: EvaluateSpec, signal: AbortSignal): Promise<EvaluateResponse> {
    return this.withPublished(async ({ current, model, session }) => {
      const uri = order.dataset?.uri ?? current.training.dataset;
      const split = order.dataset?.split === Split.SPLIT_TRAIN ? 'train' : 'test';
      let data;
      try {
        data = await this.deps.models.dataset(uri, split);
      } catch (error) {
        throw notFound(
          `dataset ${uri.slice(0, 100)} (${split}): ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      if (data.classes.join('\n') !== current.card.classes.join('\n')) {
        throw failedPrecondition(
          `the dataset's classes [${data.classes.join(', ').slice(0, 100)}] differ from the model's`,
        );
      }
      // DatasetSpec.limit: the seeded subset workers take for the same limit (seed 0).
      const limit = order.dataset?.limit ?? 0;
      if (limit > 0) data = limitTrainingSet(data, limit, 0);
      const key = `serving-${split}-${createHash('sha256').update(uri).digest('hex').slice(0, 16)}`;
      session.useDataset(key, {
        source: { $case: 'uri', value: uri },
        split: split === 'train' ? Split.SPLIT_TRAIN : Split.SPLIT_TEST,
        limit: 0,
      });
      const result = await evaluateDistributed(
        model,
        session,
        key,
        data,
        current.card.normalisation,
        {
          batchSize: order.batchSize,
          signal,
          ...(order.ignoreOutputMask
            ? {}
            : { suppressClasses: current.card.suppressClasses ?? [] }),
        },
      );
      const classes = current.card.classes;
      return {
        manifestRevision: current.manifest.revision,
        samples: result.samples,
        correct: result.correct,
        accuracy: result.accuracy,
        perClass: result.perClass.map((c, i) => ({
          classIndex: i,
          className: classes[i]!,
          samples: c.samples,
          correct: c.correct,
          accuracy: c.samples === 0 ? Number.NaN : c.correct / c.samples,
        })),
        routing: {
          rows: classes.length,
          cols: model.config.experts,
          counts: result.routing.flat(),
        },
        confusion: { rows: classes.length, cols: classes.length, counts: result.confusion.flat() },
        seconds: result.seconds,
      };
    });
  }

  /** Runs `task` on the published revision, switching to a newer one between calls. */
  private async withPublished<T>(task: (served: Served) => Promise<T>): Promise<T> {
    for (;;) {
      if (this.switching) {
        await this.switching;
        continue;
      }
      const current = await this.deps.models.current();
      if (!current) throw failedPrecondition('no trained model: run StartTraining first');
      if (this.switching) continue;
      if (this.served?.current.manifest.revision === current.manifest.revision) break;
      this.switching = this.switchTo(current).finally(() => {
        this.switching = undefined;
      });
    }
    const served = this.served!;
    this.inflight++;
    try {
      return await task(served);
    } finally {
      this.inflight--;
      if (this.inflight === 0) this.drained?.();
    }
  }

  /** Loads a revision's router and a serving session over its experts; frees the old one. */
  private async switchTo(current: CurrentModel): Promise<void> {
    const { card, manifest } = current;
    const router = manifest.objects['router'];
    if (!router) throw failedPrecondition(`manifest revision ${manifest.revision} names no router`);
    const model = new MoEModel(card.config);
    try {
      deserializeParameters(model.router.params, await getVerified(this.deps.store, router));
      await this.deps.directory.setExpertCount(card.config.experts);
    } catch (error) {
      model.dispose();
      throw error;
    }
    const session = new ExpertSession(this.deps.directory, this.deps.log, {
      model: modelSpecOf(card.config, card.normalisation),
      datasets: {},
      checkpoints: new Map(
        Array.from({ length: card.config.experts }, (_, e) => [
          e,
          { weights: manifest.objects[`expert/${e}`]!, lastStepId: 0 },
        ]),
      ),
      copy: ExpertCopy.EXPERT_COPY_SERVING,
      deadlineMs: this.deps.workerDeadlineMs,
      ...(this.deps.onRpc ? { onRpc: this.deps.onRpc } : {}),
    });
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => (this.drained = resolve));
      this.drained = undefined;
    }
    const old = this.served;
    this.served = { current, model, session };
    old?.model.dispose();
    this.deps.log.info({ manifestRevision: manifest.revision }, 'serving revision');
  }
}

/** Bytes to the model's normalised floats: (v/255 − mean) / std per channel. */
function normalisePixels(
  images: readonly ImageTensor[],
  stats: { mean: readonly number[]; std: readonly number[] },
  size: number,
): Float32Array {
  const channels = stats.mean.length;
  const pixels = new Float32Array(images.length * size);
  images.forEach((image, i) => {
    for (let j = 0; j < size; j++) {
      const ch = j % channels;
      pixels[i * size + j] = (image.data[j]! / 255 - stats.mean[ch]!) / stats.std[ch]!;
    }
  });
  return pixels;
}
