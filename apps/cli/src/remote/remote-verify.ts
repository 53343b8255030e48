import {
  type CoordinatorClient,
  ForgetMode,
  type ListExpertsResponse,
  type Receipt,
} from '@lethe/proto';
import { CliError } from '../terminal/errors';
import { callUnary, withCoordinator } from './grpc';
import type { CoordinatorTarget } from './target';

/** What `lethe verify --coordinator` found, as `--json` prints it. */
export interface RemoteVerification {
  requestId: string;
  coordinator: string;
  ok: boolean;
  /** The revision that published the receipt, and the one the coordinator serves now. */
  receiptRevision: number;
  servedRevision: number;
  /** Served expert weights compared with the hashes the receipts chain leads to. */
  expertsChecked: number;
  problems: string[];
  /** What the store-side `lethe verify` checks and no RPC exposes. */
  notChecked: string[];
}

const short = (hash: string): string => hash.slice(0, 12);
const revisionOf = (receipt: Receipt): number => receipt.manifest?.after ?? 0;

/**
 * Checks a receipt against what the coordinator serves, from its API alone: the receipt's own
 * hashes agree with the parts it says changed, and every served expert's weights object is the
 * one the receipt published — or, where a later receipt retrained that expert, the one the chain
 * of later receipts leads to. A hash that changed outside any receipt (a retraining) is a problem:
 * the served model then no longer descends from this forget, and the API cannot say more.
 */
export function checkServedModel(
  receipt: Receipt,
  later: readonly Receipt[],
  served: ListExpertsResponse,
): Pick<RemoteVerification, 'problems' | 'expertsChecked' | 'notChecked'> {
  const problems: string[] = [];
  const before = receipt.weights?.before ?? {};
  const after = receipt.weights?.after ?? {};
  const changed = new Set(receipt.partsChanged);
  for (const part of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const differs = before[part] !== after[part];
    if (differs !== changed.has(part)) {
      problems.push(
        `${part}: the receipt ${changed.has(part) ? 'lists it as changed but its hashes are equal' : 'does not list it as changed but its hashes differ'}`,
      );
    }
  }

  const revision = revisionOf(receipt);
  if (served.manifestRevision === 0) problems.push('the coordinator serves no model');
  else if (served.manifestRevision < revision) {
    problems.push(
      `the coordinator serves revision ${served.manifestRevision}, older than the receipt's ${revision}`,
    );
  }
  const chain = later
    .filter((r) => revisionOf(r) > revision && revisionOf(r) <= served.manifestRevision)
    .sort((a, b) => revisionOf(a) - revisionOf(b));
  const experts = Object.keys(after).filter((part) => /^expert\/\d+$/.test(part));
  let expertsChecked = 0;
  for (const part of experts) {
    let expected = after[part]!;
    let from = 'its after-hash';
    let broken = false;
    for (const next of chain) {
      const nextBefore = next.weights?.before[part];
      if (nextBefore !== undefined && nextBefore !== expected) {
        problems.push(
          `${part}: changed outside any forget receipt before revision ${next.manifest?.before ?? '?'} (a retraining?), so the served model no longer descends from this receipt`,
        );
        broken = true;
        break;
      }
      const nextAfter = next.weights?.after[part];
      if (nextAfter !== undefined && nextAfter !== expected) {
        expected = nextAfter;
        from = `the after-hash of later receipt ${next.requestId}`;
      }
    }
    if (broken || served.manifestRevision === 0) continue;
    const expert = served.experts.find((e) => `expert/${e.expertId}` === part);
    const hash = expert?.checkpoint?.sha256;
    expertsChecked++;
    if (!hash) problems.push(`${part}: the coordinator lists no weights for it`);
    else if (hash !== expected) {
      problems.push(
        `${part}: served weights ${short(hash)} are not ${short(expected)}, ${from} (changed outside any forget receipt: a retraining?)`,
      );
    }
  }
  for (const expert of served.experts) {
    if (served.manifestRevision !== 0 && !(`expert/${expert.expertId}` in after)) {
      problems.push(`expert/${expert.expertId}: served, but the receipt names no such part`);
    }
  }

  const notChecked = ["the router's weights: no RPC reports the served router's hash"];
  if (receipt.mode === ForgetMode.FORGET_MODE_EXACT) {
    notChecked.push(
      "no checkpoint still holds a forgotten sample: no RPC lists the store's objects (npx lethe verify --store on the coordinator's store checks it)",
    );
  }
  return { problems, expertsChecked, notChecked };
}

/** Every receipt the coordinator lists, following next_page_token. */
async function allReceipts(client: CoordinatorClient): Promise<Receipt[]> {
  const receipts: Receipt[] = [];
  let pageToken = '';
  do {
    const page = await callUnary(client, client.listReceipts, { pageSize: 500, pageToken });
    receipts.push(...page.receipts);
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return receipts;
}

/** `lethe verify --request-id ID --coordinator ADDR`. */
export async function remoteVerify(
  target: CoordinatorTarget,
  flags: { requestId: string; json: boolean },
): Promise<void> {
  const { requestId } = flags;
  const result = await withCoordinator(target, async (client) => {
    const receipt = await callUnary(client, client.getReceipt, { requestId });
    const served = await callUnary(client, client.listExperts, {});
    const later = await allReceipts(client);
    const verification: RemoteVerification = {
      requestId,
      coordinator: target.address,
      ok: false,
      receiptRevision: revisionOf(receipt),
      servedRevision: served.manifestRevision,
      ...checkServedModel(receipt, later, served),
    };
    if (receipt.requestId !== requestId) {
      verification.problems.unshift(`the coordinator answered with receipt ${receipt.requestId}`);
    }
    verification.ok = verification.problems.length === 0;
    return verification;
  });
  if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    console.log(
      `${requestId}: receipt of revision ${result.receiptRevision}; ${target.address} serves revision ${result.servedRevision}; ${result.expertsChecked} experts' weights checked`,
    );
    for (const problem of result.problems) console.log(`  problem: ${problem}`);
    for (const gap of result.notChecked) console.log(`  not checked remotely: ${gap}`);
  }
  if (!result.ok) {
    throw new CliError(`verification of ${requestId} failed: ${result.problems.length} problem(s)`);
  }
  if (!flags.json) {
    console.log(
      "ok: the receipt's hashes are consistent, and the served experts are the ones it (or a later receipt) published",
    );
  }
}
