import { describe, expect, it } from 'vitest';
import {
  decodeFloat32,
  encodeFloat32,
  ForgetMethod,
  ForgetMode,
  ForwardResponse,
  JobEvent,
  JobState,
  Receipt,
  SubmitForgetRequest,
  UnlearningLoss,
} from '../src/index';

/** Encodes to the wire format and decodes again. */
function roundTrip<T>(
  codec: {
    encode(message: T): { finish(): Uint8Array };
    decode(bytes: Uint8Array): T;
  },
  message: T,
): T {
  return codec.decode(codec.encode(message).finish());
}

describe('SubmitForgetRequest', () => {
  const base = {
    requestId: 'forget-airplane.1',
    method: ForgetMethod.FORGET_METHOD_TARGETED,
    loss: UnlearningLoss.UNLEARNING_LOSS_COMPLEMENT_CE,
    epochs: 5,
    learningRate: 1e-4,
    lambda: 1,
    select: 'coverage:0.8',
    maskOutput: false,
    batchSize: 128,
    seed: 7,
  };

  it('round-trips a class name target', () => {
    const request = SubmitForgetRequest.fromPartial({
      ...base,
      target: { $case: 'className', value: 'airplane' },
    });
    const decoded = roundTrip(SubmitForgetRequest, request);
    expect(decoded).toEqual(request);
    expect(decoded.target).toEqual({ $case: 'className', value: 'airplane' });
  });

  it('round-trips a class index target, including index 0', () => {
    for (const index of [0, 3]) {
      const request = SubmitForgetRequest.fromPartial({
        ...base,
        target: { $case: 'classIndex', value: index },
      });
      const decoded = roundTrip(SubmitForgetRequest, request);
      expect(decoded).toEqual(request);
      expect(decoded.target).toEqual({ $case: 'classIndex', value: index });
    }
  });

  it('round-trips a sample ids target', () => {
    const ids = ['cifar10:train:0', 'cifar10:train:123', 'cifar10:train:49999'];
    const request = SubmitForgetRequest.fromPartial({
      ...base,
      method: ForgetMethod.FORGET_METHOD_SISA_REPLAY,
      target: { $case: 'sampleIds', value: { ids } },
    });
    const decoded = roundTrip(SubmitForgetRequest, request);
    expect(decoded).toEqual(request);
    if (decoded.target?.$case !== 'sampleIds') throw new Error('wrong target');
    expect(decoded.target.value.ids).toEqual(ids);
  });

  it('decodes a request without target as target undefined', () => {
    const decoded = roundTrip(SubmitForgetRequest, SubmitForgetRequest.fromPartial(base));
    expect(decoded.target).toBeUndefined();
  });

  it('uses the proto3 JSON names', () => {
    const json = SubmitForgetRequest.toJSON(
      SubmitForgetRequest.fromPartial({ ...base, target: { $case: 'classIndex', value: 2 } }),
    );
    expect(json).toMatchObject({
      requestId: 'forget-airplane.1',
      classIndex: 2,
      method: 'FORGET_METHOD_TARGETED',
    });
  });
});

describe('Receipt', () => {
  const receipt = Receipt.fromPartial({
    schema: 1,
    requestId: 'forget-cat',
    createdAt: new Date('2025-11-26T17:00:00.123Z'),
    request: {
      target: { $case: 'classTarget', value: { index: 3, name: 'cat' } },
      method: ForgetMethod.FORGET_METHOD_TARGETED,
      loss: UnlearningLoss.UNLEARNING_LOSS_COMPLEMENT_CE,
      epochs: 5,
      learningRate: 1e-4,
      lambda: 1,
      select: 'coverage:0.8',
      batchSize: 128,
      seed: 0,
    },
    mode: ForgetMode.FORGET_MODE_APPROXIMATE,
    plan: {
      classIndex: 3,
      className: 'cat',
      samples: 5000,
      activations: [4100, 120, 5600, 180],
      rule: 'coverage:0.8',
      experts: [2, 0],
      coverage: 0.97,
    },
    expertsRetrained: [0, 2],
    partsChanged: ['router', 'expert/0', 'expert/2'],
    weights: {
      before: { router: 'a'.repeat(64), 'expert/0': 'b'.repeat(64) },
      after: { router: 'c'.repeat(64), 'expert/0': 'd'.repeat(64) },
    },
    manifest: { before: 4, after: 5 },
    suppressClasses: [],
    metrics: {
      before: {
        ua: 8.5,
        ra: 91.2,
        ta: 85.1,
        forgottenClassTestAccuracy: 70.3,
        testAccuracy: 84.0,
        perClassTest: [90, 88, NaN, 70.3],
        miaEfficacy: 12.5,
        miaAttackAccuracy: 55,
        featureProbe: 80,
        featureProbeHeldOutAccuracy: 78.5,
        routingTest: { rows: 2, cols: 2, counts: [10, 0, 3, 7] },
        seconds: 1.5,
      },
      after: {
        ua: 99.3,
        ra: 90.8,
        ta: 84.9,
        forgottenClassTestAccuracy: 0.7,
        perClassTest: [89.5, 88.1, 0.7],
        miaEfficacy: 97,
        featureProbe: 12,
        seconds: 1.4,
      },
    },
    timings: { planSeconds: 0.5, forgetSeconds: 30.25, measureSeconds: 3, totalSeconds: 34 },
    engine: 'wasm',
    history: [{ epoch: 1, loss: 0.9, accuracy: 0.75, seconds: 6 }],
    frozenExpertPasses: { computed: 12000, reused: 48000 },
    sisa: {
      shards: [
        {
          shard: 1,
          slices: 4,
          slicesReplayed: [2, 3],
          samplesRemoved: 3,
          restoredCheckpointSha256: 'e'.repeat(64),
          checkpointSha256Before: ['f'.repeat(64), '0'.repeat(64)],
          checkpointSha256After: ['1'.repeat(64), '2'.repeat(64)],
        },
      ],
      routerEpochs: 2,
    },
    jobId: 'job-000042',
    object: {
      key: `objects/${'9'.repeat(64)}`,
      sha256: '9'.repeat(64),
      size: 12345,
      kind: 'receipt',
    },
  });

  it('round-trips through the wire format', () => {
    const decoded = roundTrip(Receipt, receipt);
    expect(decoded).toEqual(receipt);
    expect(decoded.createdAt?.toISOString()).toBe('2025-11-26T17:00:00.123Z');
    expect(decoded.weights?.after['expert/0']).toBe('d'.repeat(64));
    expect(Number.isNaN(decoded.metrics?.before?.perClassTest[2])).toBe(true);
    // `optional` keeps "unset" apart from 0.
    expect(decoded.metrics?.after?.featureProbeHeldOutAccuracy).toBeUndefined();
    expect(decoded.metrics?.before?.featureProbeHeldOutAccuracy).toBe(78.5);
  });

  it('round-trips through proto3 JSON', () => {
    const json = JSON.parse(JSON.stringify(Receipt.toJSON(receipt))) as unknown;
    expect(json).toMatchObject({
      mode: 'FORGET_MODE_APPROXIMATE',
      createdAt: '2025-11-26T17:00:00.123Z',
    });
    expect(Receipt.fromJSON(json)).toEqual(receipt);
  });
});

describe('tensors inside messages', () => {
  it('carries logits as packed float32 bytes', () => {
    const logits = Float32Array.from({ length: 3 * 10 }, (_, i) => Math.sin(i));
    const message = ForwardResponse.fromPartial({
      stepId: 2 ** 40,
      expertId: 3,
      logits: { data: encodeFloat32(logits), shape: [3, 10] },
    });
    const wire = ForwardResponse.encode(message).finish();
    // The tensor costs its raw bytes plus a few bytes of framing.
    expect(wire.byteLength).toBeLessThan(logits.byteLength + 32);
    const decoded = ForwardResponse.decode(wire);
    expect(decoded.stepId).toBe(2 ** 40);
    expect(decoded.logits?.shape).toEqual([3, 10]);
    // env=node decodes bytes into their own aligned Buffer, so decodeFloat32 needs no copy.
    expect(decoded.logits!.data.byteOffset % 4).toBe(0);
    expect([...decodeFloat32(decoded.logits!.data)]).toEqual([...logits]);
  });

  it('round-trips a job event oneof', () => {
    const event = JobEvent.fromPartial({
      jobId: 'job-1',
      sequence: 3,
      time: new Date(1_700_000_000_000),
      event: {
        $case: 'status',
        value: {
          state: JobState.JOB_STATE_SUCCEEDED,
          previousState: JobState.JOB_STATE_RUNNING,
          job: { jobId: 'job-1', state: JobState.JOB_STATE_SUCCEEDED, manifestRevision: 6 },
        },
      },
    });
    expect(roundTrip(JobEvent, event)).toEqual(event);
  });
});
