import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Server,
  ServerCredentials,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import {
  type CoordinatorServer,
  CoordinatorService,
  ExpertInfo,
  ForgetMode,
  ListExpertsResponse,
  Receipt,
} from '@lethe/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkServedModel, type RemoteVerification } from '../src/remote/remote-verify';
import { letheAsync } from './cli-async';

const h = (c: string): string => c.repeat(64);

/** A receipt that retrained `changed` of three experts, published in revision `after`. */
function receipt(
  requestId: string,
  after: number,
  before: Record<string, string>,
  changed: Record<string, string>,
  mode = ForgetMode.FORGET_MODE_APPROXIMATE,
): Receipt {
  return Receipt.fromPartial({
    requestId,
    mode,
    manifest: { before: after - 1, after },
    partsChanged: Object.keys(changed),
    weights: { before, after: { ...before, ...changed } },
  });
}

const served = (revision: number, hashes: string[]): ListExpertsResponse =>
  ListExpertsResponse.fromPartial({
    manifestRevision: revision,
    experts: hashes.map((sha256, expertId) =>
      ExpertInfo.fromPartial({ expertId, checkpoint: { sha256, kind: 'expert' } }),
    ),
  });

const ORIGINAL = { router: h('r'), 'expert/0': h('a'), 'expert/1': h('b'), 'expert/2': h('c') };
const FIRST = receipt('erase-1', 3, ORIGINAL, { router: h('s'), 'expert/1': h('d') });
const SECOND = receipt('erase-2', 4, FIRST.weights!.after, { 'expert/2': h('e') });

describe('checkServedModel', () => {
  it("accepts served experts equal to the receipt's after-hashes", () => {
    const result = checkServedModel(FIRST, [FIRST], served(3, [h('a'), h('d'), h('c')]));
    expect(result.problems).toEqual([]);
    expect(result.expertsChecked).toBe(3);
    expect(result.notChecked).toEqual([expect.stringMatching(/^the router's weights/)]);
  });

  it('follows later receipts that retrained an expert again', () => {
    const now = served(4, [h('a'), h('d'), h('e')]);
    expect(checkServedModel(FIRST, [FIRST, SECOND], now).problems).toEqual([]);
    // Without the later receipt, expert 2's new weights have no explanation.
    expect(checkServedModel(FIRST, [FIRST], now).problems).toEqual([
      expect.stringMatching(/^expert\/2: served weights eeeeeeeeeeee are not cccccccccccc/),
    ]);
  });

  it('names weights that changed outside any receipt (a retraining)', () => {
    const retrained = receipt('erase-3', 6, { ...ORIGINAL, 'expert/1': h('x') }, {});
    const result = checkServedModel(FIRST, [FIRST, retrained], served(6, [h('a'), h('x'), h('c')]));
    expect(result.problems).toEqual([
      expect.stringMatching(/^expert\/1: changed outside any forget receipt before revision 5/),
    ]);
  });

  it('flags a receipt whose hashes contradict its parts_changed, and an older served model', () => {
    const forged = Receipt.fromPartial({ ...FIRST, partsChanged: ['router'] });
    const result = checkServedModel(forged, [], served(2, [h('a'), h('b'), h('c')]));
    expect(result.problems).toEqual([
      'expert/1: the receipt does not list it as changed but its hashes differ',
      "the coordinator serves revision 2, older than the receipt's 3",
      expect.stringMatching(/^expert\/1: served weights bbbbbbbbbbbb are not dddddddddddd/),
    ]);
  });

  it('says an exact receipt leaves its checkpoints to the store-side verify', () => {
    const exact = receipt(
      'erase-4',
      3,
      ORIGINAL,
      { 'expert/0': h('f') },
      ForgetMode.FORGET_MODE_EXACT,
    );
    const { notChecked } = checkServedModel(exact, [], served(3, [h('f'), h('b'), h('c')]));
    expect(notChecked).toContainEqual(expect.stringMatching(/^no checkpoint still holds/));
  });
});

// ---------------------------------------------------------------------------------------------
// The CLI against an in-process coordinator that answers the three RPCs verify uses

const RECEIPTS = [FIRST, SECOND];
let servedHashes = [h('a'), h('d'), h('e')];
const coordinator: Partial<CoordinatorServer> = {
  getReceipt(call, callback) {
    const found = RECEIPTS.find((r) => r.requestId === call.request.requestId);
    if (found) callback(null, found);
    else
      callback({
        code: status.NOT_FOUND,
        details: `no completed forget request "${call.request.requestId}"`,
      });
  },
  listReceipts(_call, callback) {
    callback(null, { receipts: RECEIPTS, nextPageToken: '', totalSize: RECEIPTS.length });
  },
  listExperts(_call, callback) {
    callback(null, served(4, servedHashes));
  },
};

const server = new Server();
let address = '';
const work = mkdtempSync(join(tmpdir(), 'lethe-remote-verify-'));

beforeAll(async () => {
  server.addService(CoordinatorService, coordinator as UntypedServiceImplementation);
  const port = await new Promise<number>((done, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : done(bound),
    ),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  await new Promise<void>((done) => server.tryShutdown(() => done()));
  rmSync(work, { recursive: true, force: true });
});

const run = (args: string[]) =>
  letheAsync(args, { cwd: work, env: { LETHE_COORDINATOR: undefined } });

describe('lethe verify --coordinator', () => {
  it('checks a receipt against the served experts, in text and JSON', async () => {
    servedHashes = [h('a'), h('d'), h('e')];
    const text = await run(['verify', '--request-id', 'erase-1', '--coordinator', address]);
    expect(text.stderr).toBe('');
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^erase-1: receipt of revision 3; .* serves revision 4; 3 experts/);
    expect(text.stdout).toMatch(/not checked remotely: the router's weights/);
    expect(text.stdout).toMatch(/\nok: /);

    const json = await run([
      'verify',
      '--request-id',
      'erase-1',
      '--coordinator',
      address,
      '--json',
    ]);
    expect(json.status).toBe(0);
    const result = JSON.parse(json.stdout) as RemoteVerification;
    expect(result).toMatchObject({ ok: true, receiptRevision: 3, servedRevision: 4, problems: [] });
  });

  it('fails with one line when the served weights are not the published ones', async () => {
    servedHashes = [h('a'), h('b'), h('e')];
    const {
      status: code,
      stdout,
      stderr,
    } = await run(['verify', '--request-id', 'erase-1', '--coordinator', address]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/problem: expert\/1: served weights bbbbbbbbbbbb are not dddddddddddd/);
    expect(stderr).toBe('lethe: error: verification of erase-1 failed: 1 problem(s)\n');
  });

  it('fails with one line for an unknown request', async () => {
    const { status: code, stderr } = await run([
      'verify',
      '--request-id',
      'nope',
      '--coordinator',
      address,
    ]);
    expect(code).toBe(1);
    expect(stderr).toBe('lethe: error: NOT_FOUND: no completed forget request "nope"\n');
  });
});

describe('lethe report --coordinator', () => {
  it('refuses with one line saying what the API lacks, and writes nothing', async () => {
    const out = join(work, 'report');
    const {
      status: code,
      stdout,
      stderr,
    } = await run(['report', '--coordinator', address, '--out', out]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(
      /^lethe: error: report over --coordinator is not supported: the Coordinator API returns receipts but not the model card and training record .*\n$/,
    );
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(existsSync(out)).toBe(false);
  });
});
