import {
  getVerified,
  ManifestStore,
  type ObjectRef,
  type ObjectStore,
  putContent,
} from '@lethe/store';
import type { ClassForgetPlan } from './forget-plan';
import type { ForgetMethod, UnlearningLoss } from './forget-methods';
import type { ForgetMetrics, MeasureMode } from './measure-forgetting';

/** What was asked, normalised (class resolved to its index and name). */
export interface ClassForgetRequestRecord {
  kind: 'class';
  classIndex: number;
  className: string;
  method: ForgetMethod;
  loss: UnlearningLoss;
  epochs: number;
  learningRate: number;
  lambda: number;
  retainFraction: number;
  /** Router anchor weight (absent in receipts made before it existed: 0). */
  anchor?: number;
  select: string;
  maskOutput: boolean;
  batchSize: number;
  seed: number;
  /** What before/after were measured on (absent in receipts made before: full). */
  measure?: MeasureMode;
}

/** The proof of one completed forget request. */
export interface ForgetReceipt {
  schema: 1;
  requestId: string;
  createdAt: string;
  request: ClassForgetRequestRecord;
  /** `joint` training forgets approximately; `sisa` replay (planned) is exact. */
  mode: 'approximate';
  plan: ClassForgetPlan;
  expertsRetrained: number[];
  /** Model parts whose weights changed (router, expert/i). */
  partsChanged: string[];
  /** SHA-256 of each part's weights object, before and after. */
  weights: { before: Record<string, string>; after: Record<string, string> };
  manifest: { before: number; after: number };
  /** Output classes suppressed at serving time after this request. */
  suppressClasses: number[];
  metrics: { before: ForgetMetrics; after: ForgetMetrics };
  timings: {
    planSeconds: number;
    forgetSeconds: number;
    measureSeconds: number;
    totalSeconds: number;
  };
  engine: string;
  /** Per retraining epoch: mean loss, accuracy on its batches, images seen, seconds. */
  history: { epoch: number; loss: number; accuracy: number; images: number; seconds: number }[];
  /** Targeted only: frozen-expert forward passes computed vs served from the cache. */
  frozenExpertPasses?: { computed: number; reused: number };
}

const REQUEST_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function assertValidRequestId(id: string): void {
  if (!REQUEST_ID.test(id)) {
    throw new Error(
      `invalid request id ${JSON.stringify(id)}: 1–64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit`,
    );
  }
}

/** Manifest object name under which a receipt is published. */
export function receiptObjectName(requestId: string): string {
  return `receipt/${requestId}`;
}

export async function storeReceipt(store: ObjectStore, receipt: ForgetReceipt): Promise<ObjectRef> {
  const bytes = new TextEncoder().encode(`${JSON.stringify(receipt, null, 2)}\n`);
  return putContent(store, bytes, { kind: 'receipt' });
}

/** The receipt the current manifest names for a request id, if any (hash-checked). */
export async function readReceipt(
  store: ObjectStore,
  requestId: string,
): Promise<ForgetReceipt | undefined> {
  const manifest = await new ManifestStore(store).read();
  const ref = manifest?.objects[receiptObjectName(requestId)];
  if (!ref) return undefined;
  return JSON.parse(new TextDecoder().decode(await getVerified(store, ref))) as ForgetReceipt;
}

/** All receipts the current manifest names, oldest first. */
export async function listReceipts(store: ObjectStore): Promise<ForgetReceipt[]> {
  const manifest = await new ManifestStore(store).read();
  if (!manifest) return [];
  const receipts: ForgetReceipt[] = [];
  for (const [name, ref] of Object.entries(manifest.objects)) {
    if (!name.startsWith('receipt/')) continue;
    receipts.push(
      JSON.parse(new TextDecoder().decode(await getVerified(store, ref))) as ForgetReceipt,
    );
  }
  return receipts.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}
