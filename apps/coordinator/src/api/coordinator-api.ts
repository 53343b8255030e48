import * as grpc from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import * as tf from '@tensorflow/tfjs-core';
import { formatSampleId, limitTrainingSet, parseSampleId } from '@lethe/data';
import { deserializeParameters, MoEModel } from '@lethe/model';
import {
  type CancelJobRequest,
  type CoordinatorServer,
  type EvaluateRequest,
  type EvaluateResponse,
  ExpertStatus,
  ForgetMethod,
  type GetJobRequest,
  type GetReceiptRequest,
  type Job,
  type JobEvent,
  JobState,
  type ListExpertsResponse,
  type ListReceiptsRequest,
  type ListReceiptsResponse,
  type ListWorkersResponse,
  type PredictRequest,
  type PredictResponse,
  type Receipt,
  Split,
  type StartTrainingRequest,
  type SubmitForgetRequest,
  type SubmitForgetResponse,
  type WatchJobRequest,
  WorkerState,
  encodeFloat32,
} from '@lethe/proto';
import {
  alreadyExists,
  callerOf,
  failedPrecondition,
  invalidArgument,
  notFound,
  RpcError,
  serverStreamHandler,
  unaryHandler,
  unavailable,
} from '@lethe/rpc';
import { getVerified, type ObjectStore } from '@lethe/store';
import { loadSisa, type SisaReceipt, slotsByIndex } from '@lethe/sisa';
import {
  type ForgetReceipt,
  listReceipts,
  readReceipt,
  receiptObjectName,
} from '@lethe/unlearning';
import type { Logger } from 'pino';
import type { AuditActor } from '../audit/audit-log';
import { actorOf, AuditService } from '../audit/audit.service';
import type { CoordinatorConfig } from '../config/coordinator-config';
import type { ForgetJobRequest } from '../forgetting/forget-request';
import {
  evaluateDistributed,
  expertLogitsFrom,
  fetchExpertLogits,
} from '../inference/distributed-inference';
import { toProtoJob } from '../jobs/job-proto';
import { TERMINAL_STATES } from '../jobs/job-record';
import { JobsService } from '../jobs/jobs.service';
import { MetricsService } from '../metrics/metrics.service';
import type { CurrentModel } from '../model/current-model';
import { modelSpecOf } from '../model/model-spec';
import { ModelStateService } from '../model/model-state.service';
import { COORDINATOR_CONFIG, LOGGER, OBJECT_STORE } from '../tokens';
import { ExpertSession } from '../workers/expert-session';
import { WorkersService } from '../workers/workers.service';
import { toProtoReceipt } from './receipt-proto';
import {
  datasetUri,
  fingerprint,
  normaliseForgetOptions,
  normaliseTrainingRequest,
} from './request-validation';

function resolveClassTarget(
  target: NonNullable<SubmitForgetRequest['target']>,
  classes: readonly string[],
): number {
  if (target.$case === 'className') {
    const index = classes.indexOf(target.value);
    if (index < 0) {
      throw notFound(
        `unknown class ${JSON.stringify(target.value)} (classes: ${classes.join(', ')})`,
      );
    }
    return index;
  }
  if (target.$case === 'classIndex') {
    if (target.value >= classes.length) {
      throw notFound(
        `class_index ${target.value} is out of range: the model has ${classes.length} classes`,
      );
    }
    return target.value;
  }
  throw invalidArgument('a class target is required');
}

/** The public Coordinator service: each method validates, then hands over to the services. */
@Injectable()
export class CoordinatorApi {
  constructor(
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
    @Inject(LOGGER) private readonly log: Logger,
    @Inject(OBJECT_STORE) private readonly store: ObjectStore,
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(WorkersService) private readonly workers: WorkersService,
    @Inject(ModelStateService) private readonly models: ModelStateService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(MetricsService) private readonly metrics: MetricsService,
  ) {}

  implementation(): CoordinatorServer {
    const log = this.log.child({ component: 'api' });
    return {
      startTraining: unaryHandler((r: StartTrainingRequest) => this.startTraining(r), log),
      watchJob: serverStreamHandler((r: WatchJobRequest, call) => this.watchJob(r, call), log),
      getJob: unaryHandler(async (r: GetJobRequest) => toProtoJob(this.job(r.jobId)), log),
      cancelJob: unaryHandler(async (r: CancelJobRequest) => this.cancelJob(r), log),
      submitForget: unaryHandler((r: SubmitForgetRequest, call) => {
        const caller = { identity: callerOf(call), peer: call.getPeer() };
        return this.audit.submitForget(r, caller, () =>
          this.submitForget(r, actorOf(caller.identity)),
        );
      }, log),
      getReceipt: unaryHandler((r: GetReceiptRequest) => this.getReceipt(r), log),
      listReceipts: unaryHandler((r: ListReceiptsRequest) => this.listReceipts(r), log),
      evaluate: unaryHandler((r: EvaluateRequest) => this.evaluate(r), log),
      predict: unaryHandler((r: PredictRequest) => this.predict(r), log),
      listExperts: unaryHandler(() => this.listExperts(), log),
      listWorkers: unaryHandler(async () => this.listWorkers(), log),
    };
  }

  private job(jobId: string): ReturnType<JobsService['get']> & object {
    if (!jobId) throw invalidArgument('job_id is required');
    const job = this.jobs.get(jobId);
    if (!job) throw notFound(`unknown job ${JSON.stringify(jobId)}`);
    return job;
  }

  private async startTraining(request: StartTrainingRequest): Promise<Job> {
    const normalised = normaliseTrainingRequest(request);
    if (request.requestId) {
      const previous = this.jobs.repository.byRequestId('training', request.requestId);
      if (previous && !['failed', 'cancelled'].includes(previous.state)) {
        if (previous.fingerprint !== fingerprint(normalised)) {
          throw alreadyExists(
            `request_id ${request.requestId} was used for a different training request`,
          );
        }
        return toProtoJob(previous);
      }
    }
    if (this.jobs.active('training').length > 0) {
      throw failedPrecondition('another training job is queued or running');
    }
    const capacity = this.workers.placement.capacity();
    if (capacity < normalised.experts) {
      throw failedPrecondition(
        `${normalised.experts} experts need that much worker capacity; the ${this.workers.registry.live().length} live workers offer ${capacity}`,
      );
    }
    try {
      await this.models.state.dataset(normalised.dataset, 'train');
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw /ENOENT|no such file|not found|does not exist/i.test(message)
        ? notFound(`dataset ${normalised.dataset}: ${message}`)
        : invalidArgument(`dataset ${normalised.dataset}: ${message}`);
    }
    const { job } = this.jobs.submit(
      'training',
      request.requestId,
      fingerprint(normalised),
      normalised,
    );
    return toProtoJob(job);
  }

  private async watchJob(
    request: WatchJobRequest,
    call: grpc.ServerWritableStream<WatchJobRequest, JobEvent>,
  ): Promise<void> {
    const job = this.job(request.jobId);
    await new Promise<void>((resolve) => {
      const events: JobEvent[] = [];
      // Subscribe before the snapshot so that nothing falls between the two.
      const unsubscribe = this.jobs.events.subscribe(job.id, (event) => {
        if (event.event?.$case === 'log' && !request.includeLogs) return;
        events.push(event);
        flush();
      });
      const current = this.jobs.get(job.id)!;
      const proto = toProtoJob(current);
      let ended = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        unsubscribe();
        call.end();
        resolve();
      };
      const flush = (): void => {
        while (events.length > 0 && !ended) {
          const event = events.shift()!;
          call.write(event);
          if (
            event.event?.$case === 'status' &&
            [
              JobState.JOB_STATE_SUCCEEDED,
              JobState.JOB_STATE_FAILED,
              JobState.JOB_STATE_CANCELLED,
            ].includes(event.event.value.state)
          ) {
            end();
          }
        }
      };
      call.on('cancelled', end);
      call.write({
        jobId: job.id,
        sequence: this.jobs.events.latestSequence(job.id),
        time: new Date(),
        event: { $case: 'status', value: { state: proto.state, previousState: 0, job: proto } },
      });
      if (TERMINAL_STATES.has(current.state)) end();
      else flush();
    });
  }

  private async cancelJob(request: CancelJobRequest): Promise<Job> {
    const job = this.job(request.jobId);
    if (job.state === 'succeeded' || job.state === 'failed') {
      throw failedPrecondition(`job ${job.id} already ${job.state}`);
    }
    return toProtoJob(this.jobs.cancel(job.id));
  }

  private async requireModel(): Promise<CurrentModel> {
    const current = await this.models.state.current();
    if (!current) throw failedPrecondition('no trained model: run StartTraining first');
    return current;
  }

  private async submitForget(
    request: SubmitForgetRequest,
    submittedBy: AuditActor,
  ): Promise<SubmitForgetResponse> {
    const options = normaliseForgetOptions(request);
    const previous = this.jobs.repository.byRequestId('forget', request.requestId);
    const current = await this.requireModel();
    const sisaModel = current.training.mode === 'sisa';
    if (request.target?.$case === 'sampleIds') {
      return this.submitSampleForget(request, options, current, previous, submittedBy);
    }
    if (sisaModel) {
      // On a sisa model a class is forgotten exactly, as the set of its training samples.
      if (request.method !== ForgetMethod.FORGET_METHOD_UNSPECIFIED) {
        throw failedPrecondition(
          `the current model is a sisa model: a class is forgotten by sisa replay of its samples, not by ${ForgetMethod[request.method]}`,
        );
      }
      const classIndex = resolveClassTarget(request.target!, current.card.classes);
      const train = limitTrainingSet(
        await this.models.state.dataset(current.training.dataset, 'train'),
        current.training.limit ?? undefined,
        current.card.config.seed,
      );
      const sampleIds: string[] = [];
      for (let p = 0; p < train.size; p++) {
        if (train.labels[p] === classIndex) {
          sampleIds.push(formatSampleId(train.name, 'train', train.indices[p]!));
        }
      }
      return this.submitSampleForget(
        request,
        { ...options, method: 'sisa-replay', sampleIds: sampleIds.sort() },
        current,
        previous,
        submittedBy,
      );
    }
    const classes = current.card.classes;
    const live =
      previous && !['failed', 'cancelled'].includes(previous.state) ? previous : undefined;
    const reused = (): RpcError =>
      alreadyExists(`request_id ${request.requestId} was already used for a different request`);
    let classIndex: number;
    try {
      classIndex = resolveClassTarget(request.target!, classes);
    } catch (error) {
      // An id that is taken answers for itself before the new request's own faults.
      throw live ? reused() : error;
    }
    const normalised: ForgetJobRequest = {
      requestId: request.requestId,
      classIndex,
      className: classes[classIndex]!,
      ...options,
    };
    const print = fingerprint(normalised);
    if (live) {
      if (live.fingerprint !== print) throw reused();
      return { job: toProtoJob(live), receiptId: request.requestId, duplicate: true };
    }
    const stored = await readReceipt(this.store, request.requestId);
    if (stored) {
      throw alreadyExists(`request_id ${request.requestId} already has a receipt`);
    }
    if (this.jobs.active('training').length > 0) {
      throw failedPrecondition('a training job is queued or running; forget once it has finished');
    }
    const forgotten = (current.manifest.attributes['forgotten'] ?? []) as {
      classIndex: number;
      requestId: string;
    }[];
    const already = forgotten.find((f) => f.classIndex === classIndex);
    const pending = this.jobs
      .active('forget')
      .find((j) => (j.request as ForgetJobRequest).classIndex === classIndex);
    if (already || pending) {
      throw failedPrecondition(
        `class ${classes[classIndex]} is already forgotten or being forgotten (request ${already?.requestId ?? pending!.requestId})`,
      );
    }
    if (classes.length - forgotten.length - 1 < 2) {
      throw failedPrecondition('forgetting this class would leave fewer than 2 classes');
    }
    const { job, existing } = this.jobs.submit('forget', request.requestId, print, {
      ...normalised,
      submittedBy,
    });
    if (existing && job.fingerprint !== print) {
      throw alreadyExists(
        `request_id ${request.requestId} was already used for a different request`,
      );
    }
    return { job: toProtoJob(job), receiptId: request.requestId, duplicate: existing };
  }

  /** Samples, on a sisa model: checked against its layout now, replayed by the job. */
  private async submitSampleForget(
    request: SubmitForgetRequest,
    options: ReturnType<typeof normaliseForgetOptions>,
    current: CurrentModel,
    previous: ReturnType<JobsService['repository']['byRequestId']>,
    submittedBy: AuditActor,
  ): Promise<SubmitForgetResponse> {
    if (current.training.mode !== 'sisa') {
      throw failedPrecondition(
        'forgetting samples needs a sisa model (StartTraining with TRAINING_MODE_SISA); the current model is joint',
      );
    }
    const normalised: ForgetJobRequest = {
      requestId: request.requestId,
      classIndex: -1,
      className: '',
      ...options,
    };
    const print = fingerprint(normalised);
    const live =
      previous && !['failed', 'cancelled'].includes(previous.state) ? previous : undefined;
    if (live) {
      if (live.fingerprint !== print) {
        throw alreadyExists(
          `request_id ${request.requestId} was already used for a different request`,
        );
      }
      return { job: toProtoJob(live), receiptId: request.requestId, duplicate: true };
    }
    if (this.jobs.active('training').length > 0) {
      throw failedPrecondition('a training job is queued or running; forget once it has finished');
    }
    const { layout, manifest } = await loadSisa(this.store);
    if (manifest.objects[`receipt/${request.requestId}`]) {
      throw alreadyExists(`request_id ${request.requestId} already has a receipt`);
    }
    const slots = slotsByIndex(layout);
    const dataset = (await this.models.state.dataset(current.training.dataset, 'train')).name;
    const gone = new Set((manifest.attributes['sisaForgotten'] ?? []) as number[]);
    let remaining = 0;
    for (const id of options.sampleIds!) {
      const ref = parseSampleId(id);
      if (ref.dataset !== dataset || ref.split !== 'train') {
        throw notFound(`sample ${id} is not in the model's training set (${dataset}:train)`);
      }
      if (slots.has(ref.index)) remaining++;
      else if (!gone.has(ref.index))
        throw notFound(`sample ${id} is not in the model's training set`);
    }
    if (remaining === 0) throw failedPrecondition('every named sample is already forgotten');
    const { job, existing } = this.jobs.submit('forget', request.requestId, print, {
      ...normalised,
      submittedBy,
    });
    return { job: toProtoJob(job), receiptId: request.requestId, duplicate: existing };
  }

  private async getReceipt(request: GetReceiptRequest): Promise<Receipt> {
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(request.requestId)) {
      throw invalidArgument(`malformed request_id ${JSON.stringify(request.requestId)}`);
    }
    const job = this.jobs.repository.byRequestId('forget', request.requestId);
    if (job && (job.state === 'queued' || job.state === 'running')) {
      throw failedPrecondition(`forget request ${request.requestId} is still ${job.state}`);
    }
    // Both kinds live under receipt/<id>; exact (sisa) ones carry mode `exact`.
    const receipt = (await readReceipt(this.store, request.requestId)) as
      ForgetReceipt | SisaReceipt | undefined;
    if (!receipt) throw notFound(`no completed forget request ${request.requestId}`);
    const current = await this.models.state.current();
    return toProtoReceipt(
      receipt,
      job?.id ?? '',
      current?.manifest.objects[receiptObjectName(request.requestId)],
    );
  }

  private async listReceipts(request: ListReceiptsRequest): Promise<ListReceiptsResponse> {
    const size = Math.min(500, request.pageSize || 50);
    let start = 0;
    if (request.pageToken) {
      const match = /^offset:(\d+)$/.exec(request.pageToken);
      if (!match)
        throw invalidArgument(
          `page_token ${JSON.stringify(request.pageToken)} was not issued here`,
        );
      start = Number(match[1]);
    }
    const all = (await listReceipts(this.store)) as (ForgetReceipt | SisaReceipt)[];
    const current = await this.models.state.current();
    const page = all
      .slice(start, start + size)
      .map((r) =>
        toProtoReceipt(
          r,
          this.jobs.repository.byRequestId('forget', r.requestId)?.id ?? '',
          current?.manifest.objects[receiptObjectName(r.requestId)],
        ),
      );
    return {
      receipts: page,
      nextPageToken: start + size < all.length ? `offset:${start + size}` : '',
      totalSize: all.length,
    };
  }

  /**
   * A serving view of the current model: its router here, its experts on the workers at their
   * stored weights. Serving shares the workers' experts with jobs, so it waits for none to run.
   */
  private async serving(
    current: CurrentModel,
    datasets: Record<string, string>,
  ): Promise<{ model: MoEModel; session: ExpertSession }> {
    if (this.jobs.active().some((j) => j.state === 'running')) {
      throw unavailable('a job is running on the workers; retry when it has finished');
    }
    const { card, manifest } = current;
    this.workers.placement.setExpertCount(card.config.experts);
    const checkpoints = new Map(
      Array.from({ length: card.config.experts }, (_, e) => [
        e,
        { weights: manifest.objects[`expert/${e}`]!, lastStepId: 0 },
      ]),
    );
    const session = new ExpertSession(this.workers.placement, this.workers.registry, this.log, {
      model: modelSpecOf(card.config, card.normalisation),
      datasets: Object.fromEntries(
        Object.entries(datasets).map(([key, uri]) => [
          key,
          {
            source: { $case: 'uri' as const, value: uri },
            split: key.startsWith('train') ? Split.SPLIT_TRAIN : Split.SPLIT_TEST,
            limit: 0,
          },
        ]),
      ),
      checkpoints,
      deadlineMs: this.config.workerDeadlineMs,
      onRpc: (method, seconds) => this.metrics.recordWorkerRpc(method, seconds),
    });
    const model = new MoEModel(card.config);
    try {
      const router = manifest.objects['router'];
      if (!router) throw new Error(`manifest revision ${manifest.revision} names no router`);
      deserializeParameters(model.router.params, await getVerified(this.store, router));
    } catch (error) {
      model.dispose();
      throw error;
    }
    return { model, session };
  }

  private async evaluate(request: EvaluateRequest): Promise<EvaluateResponse> {
    const current = await this.requireModel();
    const uri = request.dataset ? datasetUri(request.dataset, 'dataset') : current.training.dataset;
    const split = request.dataset?.split === Split.SPLIT_TRAIN ? 'train' : 'test';
    let data;
    try {
      data = await this.models.state.dataset(uri, split);
    } catch (error) {
      throw notFound(
        `dataset ${uri} (${split}): ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    if (data.classes.join('\n') !== current.card.classes.join('\n')) {
      throw failedPrecondition(
        `the dataset's classes [${data.classes.join(', ')}] differ from the model's`,
      );
    }
    const batchSize = request.batchSize || 256;
    if (batchSize > 4096) throw invalidArgument(`batch_size must be 1..4096, got ${batchSize}`);
    const { model, session } = await this.serving(current, { [`${split}`]: uri });
    try {
      const result = await evaluateDistributed(
        model,
        session,
        split,
        data,
        current.card.normalisation,
        {
          batchSize,
          ...(request.ignoreOutputMask
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
    } finally {
      model.dispose();
    }
  }

  private async predict(request: PredictRequest): Promise<PredictResponse> {
    const images = request.images;
    if (images.length === 0 || images.length > 512) {
      throw invalidArgument(`images: send 1 to 512 images, got ${images.length}`);
    }
    const current = await this.requireModel();
    const [h, w, c] = current.card.config.inputShape;
    images.forEach((image, i) => {
      if (image.height !== h || image.width !== w || image.channels !== c) {
        throw invalidArgument(
          `images[${i}] is ${image.height}x${image.width}x${image.channels}; the model takes ${h}x${w}x${c}`,
        );
      }
      if (image.data.length !== h * w * c) {
        throw invalidArgument(
          `images[${i}].data holds ${image.data.length} bytes, expected ${h * w * c}`,
        );
      }
    });
    const { mean, std } = current.card.normalisation;
    const pixels = new Float32Array(images.length * h * w * c);
    images.forEach((image, i) => {
      for (let j = 0; j < h * w * c; j++) {
        const ch = j % c;
        pixels[i * h * w * c + j] = (image.data[j]! / 255 - mean[ch]!) / std[ch]!;
      }
    });
    const { model, session } = await this.serving(current, {});
    try {
      const x = tf.tensor4d(pixels, [images.length, h, w, c]);
      const classes = current.card.config.numClasses;
      try {
        const assignments = model.route(x);
        const fetched = await fetchExpertLogits(assignments, async (e, positions) => {
          const response = await session.call(
            e,
            (client) => client.predict,
            { expertId: e, images: Array.from(positions, (p) => images[p]!) },
            { label: 'Predict' },
          );
          return response!.logits!;
        });
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
    } finally {
      model.dispose();
    }
  }

  private async listExperts(): Promise<ListExpertsResponse> {
    const current = await this.models.state.current();
    if (!current) return { experts: [], manifestRevision: 0 };
    const running = this.jobs.active().some((j) => j.state === 'running');
    const parameters = (() => {
      const probe = new MoEModel(current.card.config);
      const count = probe.countParameters().expert;
      probe.dispose();
      return count;
    })();
    return {
      manifestRevision: current.manifest.revision,
      experts: Array.from({ length: current.card.config.experts }, (_, e) => {
        const worker = this.workers.placement.workerOf(e);
        return {
          expertId: e,
          workerId: worker?.id ?? '',
          workerAddress: worker?.address ?? '',
          checkpoint: current.manifest.objects[`expert/${e}`],
          status: !worker
            ? ExpertStatus.EXPERT_STATUS_UNASSIGNED
            : running
              ? ExpertStatus.EXPERT_STATUS_TRAINING
              : ExpertStatus.EXPERT_STATUS_READY,
          parameters,
        };
      }),
    };
  }

  private listWorkers(): ListWorkersResponse {
    const states = {
      alive: WorkerState.WORKER_STATE_ALIVE,
      suspect: WorkerState.WORKER_STATE_SUSPECT,
      lost: WorkerState.WORKER_STATE_LOST,
    };
    const placement = this.workers.placement.snapshot();
    return {
      workers: this.workers.registry.all().map((w) => ({
        workerId: w.id,
        address: w.address,
        device: w.device,
        capacity: { maxExperts: w.maxExperts },
        lastHeartbeat: w.lastHeartbeat,
        state: states[w.state],
        expertIds:
          w.state === 'lost'
            ? []
            : [...placement]
                .filter(([, id]) => id === w.id)
                .map(([e]) => e)
                .sort((a, b) => a - b),
        load: w.load,
        registeredAt: w.registeredAt,
      })),
    };
  }
}
