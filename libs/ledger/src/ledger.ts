import {
  type Manifest,
  ManifestStore,
  type ObjectRef,
  type ObjectStore,
  putContent,
} from '@lethe/store';
import {
  type DropEvent,
  type ErasureEvent,
  type LedgerDocument,
  LedgerDocumentSchema,
} from './ledger-schema';
import { readNamedJson } from './stored-json';

/** The manifest object naming the current ledger version. */
export const LEDGER_OBJECT = 'ledger';

/** A ledger version as read from a manifest revision (empty when it names none). */
export interface Ledger {
  document: LedgerDocument;
  /** Undefined while nothing was ever erased in this store. */
  ref: ObjectRef | undefined;
}

/** What the ledger binds now: erasures not dropped. */
export interface Erased {
  classes: ReadonlySet<string>;
  sampleIds: ReadonlySet<string>;
  subjects: ReadonlySet<string>;
  /** The binding erasures by request id. */
  byRequest: ReadonlyMap<string, ErasureEvent>;
}

/** Which ledger version a training or replay honoured: stored in its training record. */
export interface LedgerStamp {
  /** SHA-256 of the ledger document; null for an empty ledger. */
  sha256: string | null;
  events: number;
  erasures: number;
}

/** A request the ledger refuses; nothing was changed. */
export class LedgerError extends Error {
  constructor(
    message: string,
    readonly code: 'invalid-argument' | 'not-found' | 'failed-precondition',
  ) {
    super(message);
    this.name = 'LedgerError';
  }
}

/** An erasure to append: the caller publishes the result with the receipt, in one revision. */
export interface NewErasure {
  requestId: string;
  receipt: ObjectRef;
  mode: ErasureEvent['mode'];
  classes?: readonly string[];
  sampleIds?: readonly string[];
  subjects?: readonly string[];
}

const EMPTY: LedgerDocument = { schema: 1, previous: null, events: [] };

/** The ledger the given manifest (default: the current one) names. */
export async function readLedger(store: ObjectStore, manifest?: Manifest): Promise<Ledger> {
  const read = await readNamedJson(
    store,
    manifest,
    LEDGER_OBJECT,
    LedgerDocumentSchema,
    'erasure ledger',
  );
  return read
    ? { document: read.value, ref: read.ref }
    : { document: structuredClone(EMPTY), ref: undefined };
}

export function erasedOf(ledger: Ledger): Erased {
  const byRequest = new Map<string, ErasureEvent>();
  for (const event of ledger.document.events) {
    if (event.kind === 'erase') byRequest.set(event.requestId, event);
    else byRequest.delete(event.requestId);
  }
  const erasures = [...byRequest.values()];
  return {
    classes: new Set(erasures.flatMap((e) => e.classes)),
    sampleIds: new Set(erasures.flatMap((e) => e.sampleIds)),
    subjects: new Set(erasures.flatMap((e) => e.subjects)),
    byRequest,
  };
}

export function ledgerStamp(ledger: Ledger): LedgerStamp {
  return {
    sha256: ledger.ref?.sha256 ?? null,
    events: ledger.document.events.length,
    erasures: erasedOf(ledger).byRequest.size,
  };
}

/**
 * Stores the next ledger version: every event of `ledger` and the new erasures after them.
 * Nothing binds until a manifest revision names the result — publish it with the receipts it
 * cites and `expectRevision` of the manifest `ledger` was read from, so no erasure is lost to a
 * concurrent writer.
 */
export async function appendErasures(
  store: ObjectStore,
  ledger: Ledger,
  erasures: readonly NewErasure[],
  at = new Date(),
): Promise<ObjectRef> {
  const events = ledger.document.events;
  const added: ErasureEvent[] = erasures.map((e, i) => ({
    kind: 'erase',
    seq: events.length + i + 1,
    at: at.toISOString(),
    requestId: e.requestId,
    receipt: { key: e.receipt.key, sha256: e.receipt.sha256 },
    mode: e.mode,
    classes: [...(e.classes ?? [])],
    sampleIds: [...new Set(e.sampleIds ?? [])].sort(),
    subjects: [...new Set(e.subjects ?? [])].sort(),
  }));
  return storeVersion(store, ledger, added);
}

async function storeVersion(
  store: ObjectStore,
  ledger: Ledger,
  added: LedgerDocument['events'],
): Promise<ObjectRef> {
  const next = LedgerDocumentSchema.parse({
    schema: 1,
    previous: ledger.ref?.sha256 ?? null,
    events: [...ledger.document.events, ...added],
  });
  const bytes = new TextEncoder().encode(`${JSON.stringify(next, null, 1)}\n`);
  return putContent(store, bytes, { kind: 'ledger' });
}

/**
 * The only way an erasure stops binding: an operator's drop, recorded in the ledger itself
 * with who and why, published as a manifest revision of its own.
 */
export async function dropErasure(
  store: ObjectStore,
  request: { requestId: string; reason: string; by: string },
): Promise<{ event: DropEvent; revision: number }> {
  const manifests = new ManifestStore(store);
  const manifest = await manifests.read();
  const ledger = await readLedger(store, manifest);
  const reason = request.reason.trim();
  const by = request.by.trim();
  if (reason.length === 0) throw new LedgerError('a drop needs a --reason', 'invalid-argument');
  if (by.length === 0) throw new LedgerError('a drop needs to say who (--by)', 'invalid-argument');
  if (!erasedOf(ledger).byRequest.has(request.requestId)) {
    const dropped = ledger.document.events.some(
      (e) => e.kind === 'erase' && e.requestId === request.requestId,
    );
    throw new LedgerError(
      dropped
        ? `erasure ${request.requestId} was already dropped`
        : `no erasure with request id ${request.requestId} in the ledger`,
      dropped ? 'failed-precondition' : 'not-found',
    );
  }
  const event: DropEvent = {
    kind: 'drop',
    seq: ledger.document.events.length + 1,
    at: new Date().toISOString(),
    requestId: request.requestId,
    reason,
    by,
  };
  const ref = await storeVersion(store, ledger, [event]);
  const published = await manifests.update(
    (draft) => {
      draft.objects[LEDGER_OBJECT] = ref;
    },
    { expectRevision: manifest?.revision ?? 0 },
  );
  return { event, revision: published.revision };
}
