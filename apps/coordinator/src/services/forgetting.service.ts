import { Inject, Injectable } from '@nestjs/common';
import { formatSampleId, limitTrainingSet, parseSampleId } from '@lethe/data';
import {
  ForgetMethod,
  type ListReceiptsResponse,
  type ListSamplesRequest,
  type ListSamplesResponse,
  type Receipt,
  type SubmitForgetRequest,
  type SubmitForgetResponse,
} from '@lethe/proto';
import {
  alreadyExists,
  failedPrecondition,
  type Identity,
  invalidArgument,
  notFound,
} from '@lethe/rpc';
import {
  erasedOf,
  heldSamples,
  readLedger,
  readRoster,
  rosterSamples,
  ROUTING_LINEAGE_OBJECT,
} from '@lethe/ledger';
import { type ObjectStore } from '@lethe/store';
import { loadSisa, planSisaReplay, slotsByIndex } from '@lethe/sisa';
import { listReceipts, readReceipt, receiptObjectName } from '@lethe/unlearning';
import {
  checkRequestId,
  fingerprint,
  type ForgetOptions,
  normaliseForgetOptions,
  normaliseListReceipts,
  normaliseListSamples,
  quote,
} from '../contract/request-validation';
import { toProtoPreview, toProtoReceipt, toProtoSisaPlan } from '../contract/receipt-proto';
import { actorOf, AuditService } from '../audit/audit.service';
import { type CancellableCall, EngineService } from '../engine/engine.service';
import type { JobRecord } from '../contract/job-record';
import { JobsService } from '../jobs/jobs.service';
import type { CurrentModel } from '../model/current-model';
import { ModelStateService } from '../model/model-state.service';
import { OBJECT_STORE } from '../config/tokens';
import type { ForgetJobRequest } from '../contract/forget-request';

/** Who sent a request: their identity (when authenticated) and address. */
export interface Caller {
  identity: Identity | undefined;
  peer: string;
}

/**
 * What admission decided about a forget request, before anything is written: a new job to
 * submit with its normalised request, or the job that already holds its request id. A dry run
 * is this decision without the submit.
 */
export type ForgetDecision =
  | { kind: 'new'; request: ForgetJobRequest; fingerprint: string }
  | { kind: 'duplicate'; job: JobRecord };

const live = (job: JobRecord | undefined): JobRecord | undefined =>
  job && !['failed', 'cancelled'].includes(job.state) ? job : undefined;

function reused(requestId: string): Error {
  return alreadyExists(`request_id ${requestId} was already used for a different request`);
}

/**
 * Forget requests: admission (idempotency by request id, already-forgotten checks, a class on a
 * sisa model expanded into its samples), the audit entry that must be durable before a request
 * is accepted, and the receipts of finished requests.
 */
@Injectable()
export class ForgettingService {
  constructor(
    @Inject(OBJECT_STORE) private readonly store: ObjectStore,
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(ModelStateService) private readonly models: ModelStateService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(EngineService) private readonly engine: EngineService,
  ) {}

  /**
   * SubmitForget. Admission runs under the job queue's admission lock, so a retry that races
   * its original gets the original's job. The request is accepted only once its audit entry is
   * stored; every answer, refusals included, is audited.
   */
  async submit(
    request: SubmitForgetRequest,
    caller: Caller,
    call: CancellableCall,
  ): Promise<SubmitForgetResponse> {
    if (request.dryRun) return this.dryRun(request, call);
    const time = new Date();
    try {
      const options = normaliseForgetOptions(request);
      return await this.jobs.admit(async () => {
        const decision = await this.decide(request, options);
        if (decision.kind === 'duplicate') {
          void this.audit.answered('duplicate', request, caller, decision.job.id, time);
          return {
            job: this.jobs.toProto(decision.job),
            receiptId: request.requestId,
            duplicate: true,
            preview: undefined,
          };
        }
        await this.audit.answered('accepted', request, caller, this.jobs.nextJobId(), time);
        const { job } = this.jobs.submit({
          kind: 'forget',
          requestId: request.requestId,
          fingerprint: decision.fingerprint,
          request: { ...decision.request, submittedBy: actorOf(caller.identity) },
        });
        return {
          job: this.jobs.toProto(job),
          receiptId: request.requestId,
          duplicate: false,
          preview: undefined,
        };
      });
    } catch (error) {
      void this.audit.refusedSubmit(request, caller, error, time);
      throw error;
    }
  }

  /**
   * A dry run: admission's checks (so the same refusals as a real request), then the plan and
   * cost from the jobs engine thread. Nothing is written — no job, no audit entry — so the
   * request id stays free; a request id a live job holds for the same request answers as a
   * retry would, with that job.
   */
  private async dryRun(
    request: SubmitForgetRequest,
    call: CancellableCall,
  ): Promise<SubmitForgetResponse> {
    const decision = await this.decide(request, normaliseForgetOptions(request));
    if (decision.kind === 'duplicate') {
      return {
        job: this.jobs.toProto(decision.job),
        receiptId: request.requestId,
        duplicate: true,
        preview: undefined,
      };
    }
    if (decision.request.method === 'sisa-replay') {
      // Sisa: the shards and slices a replay would retrain, from the stored layout and rate.
      const loaded = await loadSisa(this.store);
      const held = slotsByIndex(loaded.layout);
      const indices = new Set(
        decision.request.sampleIds!.map((id) => parseSampleId(id).index).filter((i) => held.has(i)),
      );
      const sisaPlan = toProtoSisaPlan(planSisaReplay(loaded, indices));
      return { job: undefined, receiptId: '', duplicate: false, preview: undefined, sisaPlan };
    }
    const preview = await this.engine.preview(decision.request, call);
    return { job: undefined, receiptId: '', duplicate: false, preview: toProtoPreview(preview) };
  }

  /** Admission: every check against the model, the store and the queue; writes nothing. */
  async decide(request: SubmitForgetRequest, options: ForgetOptions): Promise<ForgetDecision> {
    const previous = live(this.jobs.repository.byRequestId('forget', request.requestId));
    const current = await this.models.state.current();
    if (!current) throw failedPrecondition('no trained model: run StartTraining first');
    const target = request.target!;
    if (target.$case === 'sampleIds') {
      return this.decideSamples(request.requestId, options, current, previous);
    }
    if (target.$case === 'subjectIds') {
      return this.decideSubjects(request.requestId, options, current, previous);
    }
    let classIndex: number;
    try {
      classIndex = resolveClass(target, current.card.classes);
    } catch (error) {
      // An id that is taken answers for itself before the new request's own faults.
      if (previous) throw reused(request.requestId);
      throw error;
    }
    if (current.training.mode === 'sisa') {
      // On a sisa model a class is forgotten exactly, as the set of its training samples.
      if (request.method !== ForgetMethod.FORGET_METHOD_UNSPECIFIED) {
        throw failedPrecondition(
          `the current model is a sisa model: a class is forgotten by sisa replay of its samples, not by ${ForgetMethod[request.method]}`,
        );
      }
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
      return this.decideSamples(
        request.requestId,
        { ...options, method: 'sisa-replay', sampleIds: sampleIds.sort() },
        current,
        previous,
      );
    }
    const classes = current.card.classes;
    const normalised: ForgetJobRequest = {
      requestId: request.requestId,
      classIndex,
      className: classes[classIndex]!,
      ...options,
    };
    const print = fingerprint(normalised);
    if (previous) return this.sameOrReused(previous, print);
    if (await readReceipt(this.store, request.requestId)) {
      throw alreadyExists(`request_id ${request.requestId} already has a receipt`);
    }
    this.noTrainingQueued();
    const forgotten = (current.manifest.attributes['forgotten'] ?? []) as {
      classIndex: number;
      requestId: string;
    }[];
    const already = forgotten.find((f) => f.classIndex === classIndex);
    const pending = this.jobs.active('forget').find((j) => j.request.classIndex === classIndex);
    // The ledger outlives the model: a class erased before the last training stays erased.
    const erased = [...erasedOf(await readLedger(this.store, current.manifest)).byRequest.values()];
    const inLedger = erased.find((e) => e.classes.includes(classes[classIndex]!));
    if (already || pending || inLedger) {
      throw failedPrecondition(
        `class ${quote(classes[classIndex])} is already forgotten or being forgotten (request ${already?.requestId ?? inLedger?.requestId ?? pending!.requestId})`,
      );
    }
    if (classes.length - forgotten.length - 1 < 2) {
      throw failedPrecondition('forgetting this class would leave fewer than 2 classes');
    }
    return { kind: 'new', request: normalised, fingerprint: print };
  }

  /**
   * Data subjects: expanded from the model's roster into their training samples, then admitted
   * as samples. The expansion comes first, so that a retry of an accepted request id is
   * answered as one (its subjects are in the ledger by then).
   */
  private async decideSubjects(
    requestId: string,
    options: ForgetOptions,
    current: CurrentModel,
    previous: JobRecord | undefined,
  ): Promise<ForgetDecision> {
    const subjects = options.subjects!;
    const roster = await readRoster(this.store, current.manifest);
    if (!roster || roster.subjectTable === null) {
      throw failedPrecondition(
        'the current model was trained without a subject table: subjects cannot be looked up',
      );
    }
    const samples = rosterSamples(roster);
    const sampleIds = samples.filter((s) => s.subject !== null && subjects.includes(s.subject));
    const expanded = { ...options, sampleIds: sampleIds.map((s) => s.sampleId).sort() };
    if (previous) return this.decideSamples(requestId, expanded, current, previous);
    const erased = erasedOf(await readLedger(this.store, current.manifest));
    for (const erasure of erased.byRequest.values()) {
      const subject = subjects.find((s) => erasure.subjects.includes(s));
      if (subject !== undefined) {
        throw failedPrecondition(
          `subject ${quote(subject)}, erased by request ${erasure.requestId}, is already forgotten`,
        );
      }
    }
    const missing = subjects.find((s) => !samples.some((r) => r.subject === s));
    if (missing !== undefined) {
      throw notFound(`subject ${quote(missing)} has no sample in the model's training set`);
    }
    return this.decideSamples(requestId, expanded, current, previous);
  }

  /** ListSamples: the roster of the current model, without what the erasure ledger holds. */
  async samples(request: ListSamplesRequest): Promise<ListSamplesResponse> {
    const selector = normaliseListSamples(request);
    const current = await this.models.state.current();
    if (!current) throw failedPrecondition('no trained model: run StartTraining first');
    const roster = await readRoster(this.store, current.manifest);
    if (!roster) {
      throw failedPrecondition('the current model was trained before rosters were stored');
    }
    let held = heldSamples(roster, erasedOf(await readLedger(this.store, current.manifest)));
    const slices = new Map<number, number>();
    if ('shard' in selector) {
      if (current.training.mode !== 'sisa') {
        throw failedPrecondition('shards belong to sisa models; the current model is joint');
      }
      const { layout } = await loadSisa(this.store);
      const shard = layout.slots[selector.shard];
      if (!shard) throw notFound(`shard ${selector.shard} (the model has ${layout.shards})`);
      shard.forEach((slice, s) => slice.forEach((i) => slices.set(i, s)));
      held = held.filter((s) => slices.has(s.index));
    } else if ('className' in selector) {
      held = held.filter((s) => s.className === selector.className);
    } else {
      held = held.filter((s) => s.subject === selector.subject);
    }
    return {
      samples: held.map((s) => ({
        sampleId: s.sampleId,
        className: s.className,
        subject: s.subject ?? '',
        ...(slices.has(s.index) ? { slice: slices.get(s.index)! } : {}),
      })),
      manifestRevision: current.manifest.revision,
    };
  }

  /**
   * Samples: on a sisa model checked against its layout now and replayed by the job; on a joint
   * model checked against its roster and the ledger now and forgotten approximately by the job.
   */
  private async decideSamples(
    requestId: string,
    given: ForgetOptions,
    current: CurrentModel,
    previous: JobRecord | undefined,
  ): Promise<ForgetDecision> {
    if (current.training.mode !== 'sisa') {
      return this.decideJointSamples(requestId, given, current, previous);
    }
    if (given.method === 'samples' && given.sampleMethod) {
      throw failedPrecondition(
        `the current model is a sisa model: its samples are forgotten by sisa replay, not by ${given.sampleMethod}`,
      );
    }
    // A replay uses the stored recipe: the request's recipe fields do not apply. Keys in the
    // order requests had before joint models took samples, so a retry keeps its fingerprint.
    const options: ForgetOptions =
      given.method === 'sisa-replay'
        ? given
        : given.subjects
          ? {
              method: 'sisa-replay',
              subjects: given.subjects,
              maskOutput: false,
              seed: 0,
              sampleIds: given.sampleIds!,
            }
          : { method: 'sisa-replay', sampleIds: given.sampleIds!, maskOutput: false, seed: 0 };
    const normalised: ForgetJobRequest = { requestId, classIndex: -1, className: '', ...options };
    const print = fingerprint(normalised);
    if (previous) return this.sameOrReused(previous, print);
    this.noTrainingQueued();
    const { layout, manifest } = await loadSisa(this.store);
    if (manifest.objects[`receipt/${requestId}`]) {
      throw alreadyExists(`request_id ${requestId} already has a receipt`);
    }
    const slots = slotsByIndex(layout);
    const dataset = (await this.models.state.dataset(current.training.dataset, 'train')).name;
    const gone = new Set((manifest.attributes['sisaForgotten'] ?? []) as number[]);
    const erasedIds = erasedOf(await readLedger(this.store, manifest)).sampleIds;
    let remaining = 0;
    for (const id of options.sampleIds!) {
      const ref = parseSampleId(id);
      if (ref.dataset !== dataset || ref.split !== 'train') {
        throw notFound(`sample ${quote(id)} is not in the model's training set (${dataset}:train)`);
      }
      if (slots.has(ref.index)) remaining++;
      else if (!gone.has(ref.index) && !erasedIds.has(id)) {
        throw notFound(`sample ${quote(id)} is not in the model's training set`);
      }
    }
    if (remaining === 0) throw failedPrecondition('every named sample is already forgotten');
    return { kind: 'new', request: normalised, fingerprint: print };
  }

  /**
   * Samples (or subjects, expanded) of a joint model: each must be in the model's roster and
   * not in the erasure ledger, nor in a forget queued or running; the job runs libs/unlearning's
   * `forgetJointSamples`, which checks the same again against the store it publishes to.
   */
  private async decideJointSamples(
    requestId: string,
    options: ForgetOptions,
    current: CurrentModel,
    previous: JobRecord | undefined,
  ): Promise<ForgetDecision> {
    const normalised: ForgetJobRequest = { requestId, classIndex: -1, className: '', ...options };
    const print = fingerprint(normalised);
    if (previous) return this.sameOrReused(previous, print);
    if (options.method === 'sisa-replay') {
      throw failedPrecondition(
        'the current model is joint: sisa replay needs a sisa model (StartTraining with TRAINING_MODE_SISA); leave the method unset to forget its samples approximately',
      );
    }
    if (await readReceipt(this.store, requestId)) {
      throw alreadyExists(`request_id ${requestId} already has a receipt`);
    }
    this.noTrainingQueued();
    const roster = await readRoster(this.store, current.manifest);
    if (!roster || !current.manifest.objects[ROUTING_LINEAGE_OBJECT]) {
      throw failedPrecondition(
        'the current model has no roster or routing lineage (trained before they were recorded): train it again to forget samples',
      );
    }
    const held = new Map(rosterSamples(roster).map((s) => [s.sampleId, s]));
    const erased = erasedOf(await readLedger(this.store, current.manifest));
    const pending = this.jobs.active('forget').filter((j) => j.request.method === 'samples');
    for (const id of options.sampleIds!) {
      const sample = held.get(id);
      if (!sample) {
        throw notFound(
          `sample ${quote(id)} is not in the model's training set (${roster.dataset}:train)`,
        );
      }
      const gone = erased.sampleIds.has(id) || erased.classes.has(sample.className);
      const by = gone
        ? [...erased.byRequest.values()].find(
            (e) => e.sampleIds.includes(id) || e.classes.includes(sample.className),
          )
        : undefined;
      const queued = pending.find((j) => j.request.sampleIds?.includes(id));
      if (gone || queued) {
        throw failedPrecondition(
          `sample ${quote(id)} is already forgotten or being forgotten (request ${by?.requestId ?? queued!.requestId})`,
        );
      }
    }
    return { kind: 'new', request: normalised, fingerprint: print };
  }

  /** A request id held by a live job: the same request again, or a reuse for another one. */
  private sameOrReused(previous: JobRecord, print: string): ForgetDecision {
    if (previous.fingerprint !== print) throw reused(previous.requestId);
    return { kind: 'duplicate', job: previous };
  }

  private noTrainingQueued(): void {
    if (this.jobs.active('training').length > 0) {
      throw failedPrecondition('a training job is queued or running; forget once it has finished');
    }
  }

  /** GetReceipt. */
  async receipt(requestId: string): Promise<Receipt> {
    if (requestId === '') throw invalidArgument('request_id is required');
    checkRequestId(requestId, true);
    const job = this.jobs.repository.byRequestId('forget', requestId);
    if (job && (job.state === 'queued' || job.state === 'running')) {
      throw failedPrecondition(`forget request ${requestId} is still ${job.state}`);
    }
    // Every kind lives under receipt/<id>; toProtoReceipt narrows by kind.
    const receipt = await readReceipt(this.store, requestId);
    if (!receipt) throw notFound(`no completed forget request ${requestId}`);
    const current = await this.models.state.current();
    return toProtoReceipt(
      receipt,
      job?.id ?? '',
      current?.manifest.objects[receiptObjectName(requestId)],
    );
  }

  /** ListReceipts: a page of every stored receipt, oldest first. */
  async receipts(page: ReturnType<typeof normaliseListReceipts>): Promise<ListReceiptsResponse> {
    const { size, start } = page;
    const all = await listReceipts(this.store);
    const current = await this.models.state.current();
    return {
      receipts: all
        .slice(start, start + size)
        .map((r) =>
          toProtoReceipt(
            r,
            this.jobs.repository.byRequestId('forget', r.requestId)?.id ?? '',
            current?.manifest.objects[receiptObjectName(r.requestId)],
          ),
        ),
      nextPageToken: start + size < all.length ? `offset:${start + size}` : '',
      totalSize: all.length,
    };
  }
}

function resolveClass(
  target: NonNullable<SubmitForgetRequest['target']>,
  classes: readonly string[],
): number {
  if (target.$case === 'className') {
    const index = classes.indexOf(target.value);
    if (index < 0) {
      throw notFound(
        `unknown class ${quote(target.value)} (classes: ${classes.join(', ').slice(0, 200)})`,
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
