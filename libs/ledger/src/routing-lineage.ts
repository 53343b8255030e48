import { formatSampleId } from '@lethe/data';
import { type Manifest, type ObjectRef, type ObjectStore, putContent } from '@lethe/store';
import { z } from 'zod';
import { readNamedJson } from './stored-json';
import { LedgerError } from './ledger';
import type { Roster } from './roster';

/** The manifest object naming the routing lineage of a jointly trained model. */
export const ROUTING_LINEAGE_OBJECT = 'lineage/routing';

const MAX_EXPERTS = 64;

/**
 * Which experts each training sample was routed to in each epoch of joint training: per epoch,
 * one bitset per sample (bit e set: expert e was among its top k at least once), samples in
 * the order of the model's roster. A sample forget plans from it — the experts that saw the
 * samples, whatever today's router would do.
 */
export const RoutingLineageSchema = z
  .object({
    schema: z.literal(1),
    experts: z.number().int().min(1).max(MAX_EXPERTS),
    samples: z.number().int().min(0),
    /** Per epoch: base64 of `samples × ceil(experts / 8)` bytes, little-endian bit order. */
    epochs: z.array(z.string()),
  })
  .superRefine((r, ctx) => {
    const bytes = r.samples * bytesPerSample(r.experts);
    r.epochs.forEach((b64, epoch) => {
      if (Buffer.from(b64, 'base64').byteLength !== bytes) {
        ctx.addIssue({ code: 'custom', message: `epoch ${epoch} does not hold ${bytes} bytes` });
      }
    });
  });

export type RoutingLineage = z.infer<typeof RoutingLineageSchema>;

function bytesPerSample(experts: number): number {
  return Math.ceil(experts / 8);
}

/** Collects the routing of every training step; positions are the training set's. */
export class RoutingLineageRecorder {
  readonly #bitsets: Uint8Array[] = [];
  readonly #width: number;

  constructor(
    readonly samples: number,
    readonly experts: number,
  ) {
    if (!Number.isInteger(experts) || experts < 1 || experts > MAX_EXPERTS) {
      throw new RangeError(`routing lineage holds 1..${MAX_EXPERTS} experts, not ${experts}`);
    }
    this.#width = bytesPerSample(experts);
  }

  /**
   * A recorder holding what `record` (a toRecord of an interrupted run) holds: a resumed
   * training records its remaining epochs into it. @throws ZodError for a malformed record.
   */
  static fromRecord(record: RoutingLineage): RoutingLineageRecorder {
    const parsed = RoutingLineageSchema.parse(record);
    const recorder = new RoutingLineageRecorder(parsed.samples, parsed.experts);
    for (const b64 of parsed.epochs)
      recorder.#bitsets.push(new Uint8Array(Buffer.from(b64, 'base64')));
    return recorder;
  }

  /** One step: `chosen` is [positions.length × topK] expert indices, sample-major. */
  record(epoch: number, positions: ArrayLike<number>, chosen: ArrayLike<number>): void {
    while (this.#bitsets.length <= epoch) {
      this.#bitsets.push(new Uint8Array(this.samples * this.#width));
    }
    const bits = this.#bitsets[epoch]!;
    const topK = chosen.length / positions.length;
    for (let i = 0; i < chosen.length; i++) {
      const p = positions[Math.floor(i / topK)]!;
      const e = chosen[i]!;
      bits[p * this.#width + (e >> 3)]! |= 1 << (e & 7);
    }
  }

  toRecord(): RoutingLineage {
    return {
      schema: 1,
      experts: this.experts,
      samples: this.samples,
      epochs: this.#bitsets.map((b) => Buffer.from(b).toString('base64')),
    };
  }
}

export function storeRoutingLineage(
  store: ObjectStore,
  lineage: RoutingLineage,
): Promise<ObjectRef> {
  const bytes = new TextEncoder().encode(JSON.stringify(lineage));
  return putContent(store, bytes, { kind: 'routing-lineage' });
}

/** The routing lineage the manifest (default: the current one) names; undefined without one. */
export async function readRoutingLineage(
  store: ObjectStore,
  manifest?: Manifest,
): Promise<RoutingLineage | undefined> {
  const read = await readNamedJson(
    store,
    manifest,
    ROUTING_LINEAGE_OBJECT,
    RoutingLineageSchema,
    'routing lineage',
  );
  return read?.value;
}

/** The experts a sample (by roster position) was routed to, per epoch. */
export function routedExperts(lineage: RoutingLineage, position: number): number[][] {
  const width = bytesPerSample(lineage.experts);
  return lineage.epochs.map((b64) => {
    const bits = Buffer.from(b64, 'base64').subarray(position * width, (position + 1) * width);
    const experts: number[] = [];
    for (let e = 0; e < lineage.experts; e++) if (bits[e >> 3]! & (1 << (e & 7))) experts.push(e);
    return experts;
  });
}

/**
 * The experts that saw any of the samples in any epoch: what a sample forget on a joint model
 * retrains (with the router). @throws LedgerError (not-found) for a sample the model did not
 * train on.
 */
export function expertsThatSaw(
  roster: Roster,
  lineage: RoutingLineage,
  sampleIds: readonly string[],
): number[] {
  if (lineage.samples !== roster.indices.length) {
    throw new LedgerError(
      `the routing lineage holds ${lineage.samples} samples, the roster ${roster.indices.length}`,
      'failed-precondition',
    );
  }
  const positionOf = new Map(
    roster.indices.map((index, p) => [formatSampleId(roster.dataset, 'train', index), p]),
  );
  const experts = new Set<number>();
  for (const id of sampleIds) {
    const p = positionOf.get(id);
    if (p === undefined) {
      throw new LedgerError(`sample ${id} is not in the model's training set`, 'not-found');
    }
    for (const epoch of routedExperts(lineage, p)) epoch.forEach((e) => experts.add(e));
  }
  return [...experts].sort((a, b) => a - b);
}
