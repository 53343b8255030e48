// The WebAssembly engine computes on one thread per process: a measurement's inference over
// thousands of samples is split across worker threads, one engine each, to use the other cores.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ChannelStats, type Dataset, subset } from '@lethe/data';
import { type EngineName, engineInfo, threadEntry } from '@lethe/engine';
import { type MoEConfig, MoEModel, serializeParameters } from '@lethe/model';
import type { OutputMemo } from './output-memo';

/** What one thread computes: the model, rebuilt from its weights, over some samples. */
export interface OutputThreadTask {
  /** The engine the calling thread runs on: the thread's computes the same way. */
  engine: EngineName;
  config: MoEConfig;
  /** Each part's serialised weights (MoEModel.parts order). */
  parts: Uint8Array[];
  normalise: ChannelStats;
  /** The samples, as subsets: their original indices say which memo slot each fills. */
  datasets: Dataset[];
}

/** Per dataset of the task: softmax rows [n, classes] and chosen experts [n, topK]. */
export type OutputThreadReply =
  { outputs: { probs: Float32Array; chosen: Int32Array }[] } | { error: string };

/** A thread's start-up (engine, weights) costs about this many samples' inference. */
const MIN_SAMPLES_PER_THREAD = 1000;

/**
 * Threads a measurement may use here: one per core up to 4, on the WebAssembly or cpu engine
 * only (the native engines compute on several cores already and do not load in threads).
 */
export function defaultOutputThreads(): number {
  const backend = engineInfo()?.backend;
  if (backend !== 'wasm' && backend !== 'cpu') return 1;
  return Math.max(1, Math.min(4, availableParallelism()));
}

/**
 * Fills each memo with the model's outputs on the positions it lacks, split across up to
 * `threads` worker threads; does nothing (the caller's own pass computes them) when there are
 * too few samples for a second thread to pay off. Outputs are the same as one thread's: each
 * sample's inference does not depend on the others in its batch. Returns the threads used (0
 * when it left the work to the caller, also when a thread failed: `onNote` says why).
 */
export async function fillMemosInThreads(
  model: MoEModel,
  normalise: ChannelStats,
  targets: { ds: Dataset; memo: OutputMemo; positions: Int32Array }[],
  threads: number,
  onNote?: (message: string) => void,
): Promise<number> {
  const missing = targets.map((t) => t.memo.missing(t.ds, t.positions));
  const total = missing.reduce((n, m) => n + m.length, 0);
  const engine = engineInfo()?.engine;
  const n = Math.min(threads, Math.floor(total / MIN_SAMPLES_PER_THREAD));
  if (n < 2 || engine === undefined) return 0;
  // Contiguous shares of the samples, in target order: a share may span two targets.
  const per = Math.ceil(total / n);
  const shares: { target: number; positions: Int32Array }[][] = Array.from({ length: n }, () => []);
  let share = 0;
  let room = per;
  missing.forEach((positions, target) => {
    let from = 0;
    while (from < positions.length) {
      const take = Math.min(room, positions.length - from);
      shares[share]!.push({ target, positions: positions.subarray(from, from + take) });
      from += take;
      room -= take;
      if (room === 0 && share < n - 1) {
        share++;
        room = per;
      }
    }
  });
  const parts = MoEModel.parts(model.config.experts).map((p) =>
    serializeParameters(model.part(p).params, { part: p }),
  );
  let replies: { probs: Float32Array; chosen: Int32Array }[][];
  try {
    replies = await Promise.all(
      shares.map((pieces) =>
        runThread({
          engine,
          config: model.config,
          parts,
          normalise,
          datasets: pieces.map((piece) => subset(targets[piece.target]!.ds, piece.positions)),
        }),
      ),
    );
  } catch (error) {
    // Nothing was recorded: the caller's own pass measures everything, a forget is not lost.
    onNote?.(`note: measuring in one thread (${error instanceof Error ? error.message : error})`);
    return 0;
  }
  replies.forEach((outputs, s) =>
    shares[s]!.forEach((piece, d) => {
      const { memo, ds } = targets[piece.target]!;
      const { probs, chosen } = outputs[d]!;
      piece.positions.forEach((p, row) => memo.record(ds.indices[p]!, probs, chosen, row));
    }),
  );
  return n;
}

/**
 * A measurement whose outputs threads may compute first: fills the memos (as
 * `fillMemosInThreads`), then runs `compute` on them, and gives it the seconds of both — the
 * next forget's estimate divides the samples measured by them.
 */
export async function measureWithThreads<M extends { seconds: number }>(
  model: MoEModel,
  normalise: ChannelStats,
  targets: { ds: Dataset; memo: OutputMemo; positions: Int32Array }[],
  threads: number,
  onNote: (message: string) => void,
  compute: () => M,
): Promise<M> {
  const started = performance.now();
  const used = await fillMemosInThreads(model, normalise, targets, threads, onNote);
  if (used > 1) onNote(`(the model ran on ${used} threads)`);
  return { ...compute(), seconds: (performance.now() - started) / 1000 };
}

function runThread(task: OutputThreadTask): Promise<{ probs: Float32Array; chosen: Int32Array }[]> {
  const { file, execArgv } = threadEntry(__dirname, 'output-thread');
  const worker = new Worker(file, { workerData: task, execArgv });
  return new Promise((resolve, reject) => {
    worker.once('message', (reply: OutputThreadReply) => {
      void worker.terminate();
      if ('error' in reply) reject(new Error(`measurement thread: ${reply.error}`));
      else resolve(reply.outputs);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`measurement thread exited (${code})`)));
  });
}
