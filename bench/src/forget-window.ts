import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CIFAR10_STATS,
  createRng,
  formatSampleId,
  limitTrainingSet,
  openDataset,
} from '@lethe/data';
import { initEngine } from '@lethe/engine';
import type { MoEConfig } from '@lethe/model';
import {
  defaultTopK,
  type ForgetClock,
  MAX_FORGET_WINDOW_MS,
  type SisaReceipt,
  SisaForgetQueue,
  trainSisaModel,
} from '@lethe/sisa';
import { LocalDirStore, ManifestStore } from '@lethe/store';
import { Command } from 'commander';
import { machine, today, writeSection } from './benchmarks-md';
import { withSisaRecipeOptions } from './sisa-recipe-options';

// 100 single-sample forget requests arriving over a simulated day, replayed by the product's
// SisaForgetQueue (libs/sisa: the ForgetWindow policy the coordinator's job queue uses too, and
// replayBatch) once per window setting, each on a copy of one trained sisa model.

const program = withSisaRecipeOptions(
  new Command()
    .requiredOption('--data <dir>', 'CIFAR-10 binary directory (../shared/data/make-cifar10-bin)')
    .option('--limit <N>', 'training samples (seeded subset)', '2000')
    .option('--preset <name>', 'model preset', 'small')
    .option('--experts <E>', 'experts = shards', '8'),
)
  .option('--requests <N>', 'single-sample requests over the day', '100')
  .option('--windows <list>', 'forget windows to compare (0, 30m, 1h, 24h, …)', '0,1h,24h')
  .option('--seed <S>', 'seed of the samples and arrival times', '1')
  .parse();
const o = program.opts<Record<string, string>>();

const DAY_MS = 86_400_000;

function parseWindow(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`--windows: cannot read ${JSON.stringify(text)}`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] ?? 'ms']!;
  return Math.round(Number(m[1]) * unit);
}

const human = (ms: number): string =>
  ms === 0
    ? '0'
    : ms % 3_600_000 === 0
      ? `${ms / 3_600_000} h`
      : ms % 60_000 === 0
        ? `${ms / 60_000} min`
        : `${(ms / 1000).toFixed(0)} s`;

/**
 * Simulated time: it runs at real speed while a replay computes (the cost is real) and jumps
 * over idle stretches to the next arrival or timer, so a day of arrivals takes only as long as
 * its replays.
 */
class SimulatedClock implements ForgetClock {
  #offset = -performance.now();
  #timers: { due: number; fn: () => void; live: boolean }[] = [];

  now(): number {
    return performance.now() + this.#offset;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { due: this.now() + ms, fn, live: true };
    this.#timers.push(timer);
    return () => (timer.live = false);
  }

  nextDue(): number {
    this.#timers = this.#timers.filter((t) => t.live);
    return Math.min(Infinity, ...this.#timers.map((t) => t.due));
  }

  fireDue(): void {
    for (;;) {
      const due = this.#timers
        .filter((t) => t.live && t.due <= this.now())
        .sort((a, b) => a.due - b.due)[0];
      if (!due) return;
      due.live = false;
      due.fn();
    }
  }

  jumpTo(t: number): void {
    const now = this.now();
    if (t > now) this.#offset += t - now;
  }
}

interface Arrival {
  at: number;
  requestId: string;
  sampleId: string;
}

interface RunResult {
  windowMs: number;
  batches: { size: number; seconds: number }[];
  latencies: number[];
  /** Requests answered later than the window plus their own batch's replay. */
  overBound: number;
  hashes: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runDay(
  storeDir: string,
  train: Awaited<ReturnType<typeof openDataset>>,
  arrivals: readonly Arrival[],
  windowMs: number,
): Promise<RunResult> {
  const clock = new SimulatedClock();
  const store = new LocalDirStore(storeDir);
  const batchStarts: { at: number; ids: readonly string[] }[] = [];
  const queue = new SisaForgetQueue(store, train, {
    windowMs,
    clock,
    onBatch: (ids) => batchStarts.push({ at: clock.now(), ids }),
  });
  const answered = new Map<string, { at: number; receipt: SisaReceipt }>();
  const failures: unknown[] = [];
  let next = 0;
  while (answered.size + failures.length < arrivals.length) {
    clock.fireDue();
    const arrival = arrivals[next];
    if (arrival && clock.now() >= arrival.at) {
      next++;
      queue
        .submit({ requestId: arrival.requestId, sampleIds: [arrival.sampleId] })
        .then((receipt) => answered.set(arrival.requestId, { at: clock.now(), receipt }))
        .catch((error: unknown) => failures.push(error));
      continue;
    }
    const upcoming = Math.min(arrival?.at ?? Infinity, clock.nextDue());
    if (queue.busy || upcoming === Infinity) {
      // A replay is computing (or settling): let it run in real time.
      await sleep(Math.max(1, Math.min(20, upcoming - clock.now())));
      continue;
    }
    clock.jumpTo(upcoming);
    await sleep(0);
  }
  if (failures.length > 0) throw failures[0];
  const byBatch = new Map<string, number>();
  for (const { at, receipt } of answered.values()) {
    const key = receipt.batch!.id!;
    byBatch.set(key, Math.max(byBatch.get(key) ?? 0, at));
  }
  const batches = batchStarts.map(({ at, ids }) => {
    const end = answered.get(ids[0]!)!.at;
    return { size: ids.length, seconds: (end - at) / 1000 };
  });
  let overBound = 0;
  const latencies = arrivals.map((a) => {
    const { at, receipt } = answered.get(a.requestId)!;
    const start = batchStarts.find((b) => b.ids.includes(a.requestId))!.at;
    const replay = at - start;
    // Window plus one replay, with a second of slack for the simulation's polling.
    if (at - a.at > windowMs + replay + 1_000) overBound++;
    void receipt;
    return (at - a.at) / 1000;
  });
  const manifest = (await new ManifestStore(store).read())!;
  const hashes = Object.entries(manifest.objects)
    .filter(([name]) => name === 'router' || name.startsWith('expert/'))
    .map(([name, ref]) => `${name}=${ref.sha256}`)
    .sort()
    .join(',');
  return { windowMs, batches, latencies, overBound, hashes };
}

async function main(): Promise<void> {
  const engine = await initEngine({ log: () => undefined });
  const dir = `cifar10:${resolve(o['data']!)}`;
  const train = limitTrainingSet(await openDataset(dir, 'train'), Number(o['limit']), 0);
  const E = Number(o['experts']);
  const config: MoEConfig = {
    preset: o['preset']!,
    experts: E,
    topK: defaultTopK('sisa', E),
    numClasses: train.classes.length,
    inputShape: [32, 32, 3],
    routerNoise: 1,
    balanceWeight: 0.1,
    seed: 0,
  };
  const options = {
    dataset: dir,
    config,
    classes: train.classes,
    normalise: CIFAR10_STATS,
    slices: Number(o['slices']),
    assignment: 'uniform' as const,
    epochsPerSlice: Number(o['epochsPerSlice']),
    routerEpochs: Number(o['routerEpochs']),
    routerFraction: Number(o['routerFraction']),
    batchSize: 128,
    learningRate: 0.003,
    weightDecay: 0.0005,
  };
  const windows = o['windows']!.split(',').map(parseWindow);
  for (const w of windows) {
    if (w > MAX_FORGET_WINDOW_MS) throw new Error(`--windows: ${w} ms is over the one-day bound`);
  }
  const n = Number(o['requests']);
  const rng = createRng(Number(o['seed']));
  const victims = Array.from(rng.shuffle(Int32Array.from(train.indices)).slice(0, n));
  const times = Array.from({ length: n }, () => Math.floor(rng.next() * DAY_MS)).sort(
    (a, b) => a - b,
  );
  const arrivals: Arrival[] = victims.map((index, i) => ({
    at: times[i]!,
    requestId: `day-${String(i).padStart(3, '0')}`,
    sampleId: formatSampleId(train.name, 'train', index),
  }));

  const benchStarted = performance.now();
  const base = mkdtempSync(join(tmpdir(), 'lethe-bench-window-'));
  try {
    const trainedDir = join(base, 'trained');
    console.log(`sisa: training E=${E} R=${options.slices} on ${train.size} images`);
    const trained = await trainSisaModel(new LocalDirStore(trainedDir), train, options);
    console.log(`sisa: trained in ${trained.seconds.toFixed(0)} s`);
    const results: RunResult[] = [];
    for (const windowMs of windows) {
      const copy = join(base, `window-${windowMs}`);
      cpSync(trainedDir, copy, { recursive: true });
      const started = performance.now();
      const result = await runDay(copy, train, arrivals, windowMs);
      results.push(result);
      const cost = result.batches.reduce((s, b) => s + b.seconds, 0);
      console.log(
        `window ${human(windowMs)}: ${result.batches.length} replays, ${cost.toFixed(0)} s of replay, worst latency ${Math.max(...result.latencies).toFixed(0)} s (run ${((performance.now() - started) / 1000).toFixed(0)} s)`,
      );
      rmSync(copy, { recursive: true, force: true });
    }
    const singles = results.flatMap((r) => r.batches.filter((b) => b.size === 1));
    const one = singles.reduce((s, b) => s + b.seconds, 0) / Math.max(1, singles.length);
    const sameWeights = results.every((r) => r.hashes === results[0]!.hashes);
    const rows = results.map((r) => {
      const cost = r.batches.reduce((s, b) => s + b.seconds, 0);
      const worst = Math.max(...r.latencies);
      const longest = Math.max(...r.batches.map((b) => b.seconds));
      const sizes = r.batches.map((b) => b.size);
      return {
        windowMs: r.windowMs,
        ratio: cost / one,
        overBound: r.overBound,
        line: `| ${human(r.windowMs)} | ${r.batches.length} | ${Math.min(...sizes)}–${Math.max(...sizes)} | ${cost.toFixed(0)} s | ${(cost / one).toFixed(1)}× | ${longest.toFixed(1)} s | ${(worst / 60).toFixed(1)} min | ${r.overBound === 0 ? 'all' : `${n - r.overBound} of ${n}`} |`,
      };
    });
    const withWindow = rows.filter((r) => r.windowMs > 0);
    const best = withWindow.length > 0 ? Math.min(...withWindow.map((r) => r.ratio)) : Number.NaN;
    const meeting = withWindow.filter((r) => r.ratio <= 10 && r.overBound === 0);
    writeSection(
      'forget-window',
      [
        '## 100 single-sample forget requests over a day, with and without a forget window (`npm run bench:forget-window`)',
        '',
        `${today()} · ${machine()} · engine **${engine.engine}**`,
        '',
        `Command: \`npm run bench:forget-window -- ${process.argv.slice(2).join(' ')}\`. A sisa model (the \`${config.preset}\` preset, E=${E}, R=${options.slices}, ${options.epochsPerSlice} epochs per slice prefix, router ${options.routerEpochs} epoch on ${(options.routerFraction * 100).toFixed(0)}% of the samples) on ${train.size} CIFAR-10 training images (seeded subset), trained in ${trained.seconds.toFixed(0)} s. ${n} requests, one random training sample each, arrive at seeded uniform times over a simulated day and go through libs/sisa's \`SisaForgetQueue\` — the \`ForgetWindow\` policy the coordinator's job queue uses (\`--forget-window-ms\`) and the same \`replayBatch\` — once per window, each run on a copy of the trained model. Simulated time runs at real speed while a replay computes and skips idle stretches, so the replay seconds and latencies are real and the day takes only as long as its replays. "One request" is the mean replay of a batch holding a single request (${singles.length} of them): **${one.toFixed(1)} s**. Latency is from a request's arrival to its receipt (waiting for the window, for a replay in progress, and its own replay).`,
        '',
        `The whole benchmark (training and the ${windows.length} days) took ${((performance.now() - benchStarted) / 60_000).toFixed(0)} min on one core.`,
        '',
        '| window | replays | requests per replay | total replay | vs one request | longest replay | worst latency | answered within window + one replay |',
        '|---|---|---|---|---|---|---|---|',
        ...rows.map((r) => r.line),
        '',
        `Every run ends with the same weights (experts and router), whatever the batching: **${sameWeights ? 'yes' : 'NO'}** — a batched replay equals the sequential replays bit for bit (also tested in libs/sisa, \`forget-window.test.ts\`).`,
        '',
        `Target: ${n} single-sample requests in a day cost ≤ 10× one request with a window, every request answered within the window plus one replay: **${meeting.length > 0 ? `met with a window of ${meeting.map((r) => human(r.windowMs)).join(', ')}` : 'missed'}**${
          meeting.length === withWindow.length
            ? ''
            : ` (not with ${withWindow
                .filter((r) => !meeting.includes(r))
                .map(
                  (r) =>
                    `${human(r.windowMs)}: ${r.ratio.toFixed(1)}×${r.overBound > 0 ? `, ${r.overBound} late` : ''}`,
                )
                .join('; ')})`
        }; best ${best.toFixed(1)}×. A replay of a batch costs up to a full sisa retraining (every shard from its first slice holding a forgotten sample), so only a window that gathers most of a day's requests into one or two replays reaches 10×; a shorter window trades cost for latency.`,
      ].join('\n'),
    );
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
