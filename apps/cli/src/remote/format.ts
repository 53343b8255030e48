import {
  type CountMatrix,
  type EvaluateResponse,
  type ExpertInfo,
  expertStatusToJSON,
  ForgetMethod,
  type ForgetMetrics,
  forgetMethodToJSON,
  forgetModeToJSON,
  type Job,
  jobKindToJSON,
  type Receipt,
  type WorkerInfo,
  workerStateToJSON,
} from '@lethe/proto';
import { FORGET_METRICS_HEADER, percent, table } from '../terminal/tables';
import { counted, ofSubjects } from '../terminal/wording';
import { jobStateName } from './grpc';

/** `gradient-ascent` for `FORGET_METHOD_GRADIENT_ASCENT` with prefix `FORGET_METHOD_`. */
export function enumName(json: string, prefix: string): string {
  return json.replace(prefix, '').toLowerCase().replaceAll('_', '-');
}

const two = (n: number | undefined): string =>
  n === undefined || Number.isNaN(n) ? '—' : n.toFixed(2);

/** What a receipt forgot: `class cross` or `3 samples`. */
export function receiptTarget(receipt: Receipt): string {
  const target = receipt.request?.target;
  if (target?.$case === 'classTarget') return `class ${target.value.name}`;
  if (target?.$case === 'sampleIds') {
    return `${counted(target.value.ids.length, 'sample')}${ofSubjects(receipt.request?.subjects)}`;
  }
  return receipt.plan?.className ? `class ${receipt.plan.className}` : 'unknown target';
}

/** A forget method as the CLI spells it: `neggrad+` for FORGET_METHOD_NEGGRAD_PLUS. */
export function methodName(method: ForgetMethod): string {
  return method === ForgetMethod.FORGET_METHOD_NEGGRAD_PLUS
    ? 'neggrad+'
    : enumName(forgetMethodToJSON(method), 'FORGET_METHOD_');
}

/** A receipt from the coordinator, laid out as the local `lethe forget` prints one. */
export function printRemoteReceipt(receipt: Receipt): void {
  const method = methodName(receipt.request?.method ?? 0);
  const mode = enumName(forgetModeToJSON(receipt.mode), 'FORGET_MODE_');
  console.log(
    `forgot ${receiptTarget(receipt)} (${method}, ${mode}) — request ${receipt.requestId}`,
  );
  const plan = receipt.plan;
  if (plan && plan.activations.length > 0) {
    console.log(
      `plan: activations per expert ${plan.activations.map((n, e) => `e${e}=${n}`).join(' ')}; ` +
        `rule ${plan.rule || '—'} → experts ${plan.experts.join(', ') || '—'} (coverage ${(plan.coverage * 100).toFixed(1)}%)`,
    );
  } else if (plan && plan.lineageEpochs > 0) {
    // A joint model's samples: the experts the routing lineage says saw them.
    console.log(
      `plan: ${counted(plan.samples, 'sample was', 'samples were')} routed to ${plan.experts.map((e) => `e${e}`).join(', ') || 'no expert'} ` +
        `in ${counted(plan.lineageEpochs, 'recorded epoch')}; they carry ${plan.collateral.toFixed(1)}% of the retained samples' routing`,
    );
  }
  console.log(`changed: ${receipt.partsChanged.join(', ') || 'no weights'}`);
  const { before, after } = receipt.metrics ?? {};
  if (before && after) {
    const row = (name: string, m: ForgetMetrics): string[] => [
      name,
      two(m.ua),
      two(m.ra),
      two(m.ta),
      two(m.forgottenClassTestAccuracy),
      two(m.miaEfficacy),
      two(m.featureProbe),
      two(m.unmaskedUa),
      two(m.unmaskedForgottenClassTestAccuracy),
      two(m.unmaskedMiaEfficacy),
    ];
    console.log(table([FORGET_METRICS_HEADER, row('before', before), row('after', after)]));
  }
  const t = receipt.timings;
  if (t) {
    console.log(
      `time: forget ${t.forgetSeconds.toFixed(1)} s, plan ${t.planSeconds.toFixed(1)} s, ` +
        `measure ${t.measureSeconds.toFixed(1)} s, total ${t.totalSeconds.toFixed(1)} s`,
    );
  }
  console.log(
    `receipt stored; manifest revision ${receipt.manifest?.before ?? '?'} → ${receipt.manifest?.after ?? '?'}` +
      (receipt.jobId ? ` (job ${receipt.jobId})` : ''),
  );
}

/** The receipts listing table, as the local `lethe receipts` prints it. */
export function receiptsTable(receipts: Receipt[]): string {
  return table([
    ['request', 'created', 'target', 'method', 'experts', 'forgotten-class acc after'],
    ...receipts.map((r) => [
      r.requestId,
      r.createdAt?.toISOString() ?? '—',
      receiptTarget(r),
      methodName(r.request?.method ?? 0),
      r.expertsRetrained.join(',') || '—',
      two(r.metrics?.after?.forgottenClassTestAccuracy),
    ]),
  ]);
}

function cell(matrix: CountMatrix | undefined, row: number, col: number): number {
  return matrix ? (matrix.counts[row * matrix.cols + col] ?? 0) : 0;
}

/** An Evaluate response, laid out as the local `lethe eval` prints an evaluation. */
export function printRemoteEvaluation(result: EvaluateResponse): void {
  console.log(
    `accuracy ${percent(result.accuracy, 2)} on ${result.samples} images ` +
      `(manifest revision ${result.manifestRevision}, ${result.seconds.toFixed(1)} s)`,
  );
  const experts = result.routing?.cols ?? 0;
  const header = ['class', 'accuracy', 'n', ...Array.from({ length: experts }, (_, e) => `e${e}`)];
  const rows = result.perClass.map((p) => {
    const routed = Array.from({ length: experts }, (_, e) => cell(result.routing, p.classIndex, e));
    const slots = routed.reduce((a, b) => a + b, 0);
    return [
      p.className || String(p.classIndex),
      percent(p.accuracy),
      p.samples,
      ...routed.map((n) => (slots === 0 ? '—' : percent(n / slots, 0))),
    ];
  });
  console.log('per-class accuracy and share of routing slots per expert:');
  console.log(table([header, ...rows]));
}

/** Seconds since a time, as `4 s ago`; `—` when unset. */
export function ago(time: Date | undefined, now = Date.now()): string {
  if (!time) return '—';
  const seconds = Math.max(0, Math.round((now - time.getTime()) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

export function workersTable(workers: WorkerInfo[], now = Date.now()): string {
  return table([
    ['worker', 'address', 'state', 'engine', 'experts', 'capacity', 'busy', 'heartbeat'],
    ...workers.map((w) => [
      w.workerId,
      w.address,
      enumName(workerStateToJSON(w.state), 'WORKER_STATE_'),
      w.device?.engine || '—',
      w.expertIds.join(',') || '—',
      w.capacity?.maxExperts ?? '—',
      w.load ? percent(w.load.busyFraction, 0) : '—',
      ago(w.lastHeartbeat, now),
    ]),
  ]);
}

export function expertsTable(experts: ExpertInfo[]): string {
  return table([
    ['expert', 'status', 'worker', 'checkpoint', 'parameters'],
    ...experts.map((e) => [
      `e${e.expertId}`,
      enumName(expertStatusToJSON(e.status), 'EXPERT_STATUS_'),
      e.workerId || '—',
      e.checkpoint?.sha256.slice(0, 12) || '—',
      e.parameters,
    ]),
  ]);
}

/** Where a job is: `train epoch 2/10 step 40/100 loss 0.812`, or its error or revision. */
export function jobWhere(job: Job): string {
  if (job.error) return job.error;
  const p = job.progress;
  const state = jobStateName(job.state);
  if (state === 'SUCCEEDED') return `manifest revision ${job.manifestRevision}`;
  if (!p) return '—';
  return `${p.phase} epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.stepsPerEpoch} loss ${p.loss.toFixed(3)}`;
}

export function jobsTable(jobs: Job[]): string {
  return table([
    ['job', 'kind', 'state', 'request', 'created', 'progress'],
    ...jobs.map((j) => [
      j.jobId,
      enumName(jobKindToJSON(j.kind), 'JOB_KIND_'),
      jobStateName(j.state),
      j.requestId || '—',
      j.createdAt?.toISOString() ?? '—',
      jobWhere(j),
    ]),
  ]);
}
