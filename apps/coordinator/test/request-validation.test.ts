import { status } from '@grpc/grpc-js';
import {
  EvaluateRequest,
  ForgetMethod,
  MeasureMode,
  PredictRequest,
  StartTrainingRequest,
  SubmitForgetRequest,
  TrainingMode,
} from '@lethe/proto';
import { DEFAULT_SPECIALIZE_WEIGHT } from '@lethe/model';
import { RpcError } from '@lethe/rpc';
import { DEFAULT_SISA_OPTIONS } from '@lethe/sisa';
import { describe, expect, it } from 'vitest';
import {
  checkPredictRequest,
  normaliseEvaluateRequest,
  normaliseForgetOptions,
  normaliseListSamples,
  normaliseTrainingRequest,
} from '../src/contract/request-validation';

const training = (fields: Partial<StartTrainingRequest>) =>
  StartTrainingRequest.fromPartial({
    mode: TrainingMode.TRAINING_MODE_JOINT,
    dataset: { source: { $case: 'uri', value: 'cifar10:/data' } },
    ...fields,
  });
const forget = (fields: Partial<SubmitForgetRequest>) =>
  SubmitForgetRequest.fromPartial({
    requestId: 'r-1',
    target: { $case: 'className', value: 'cat' },
    ...fields,
  });

/** The status and message a check throws. */
function refusal(check: () => unknown): { code: string; message: string } {
  try {
    check();
  } catch (error) {
    if (error instanceof RpcError) return { code: status[error.code], message: error.message };
    throw error;
  }
  throw new Error('accepted');
}

describe('request contract', () => {
  it('refuses non-finite and out-of-range numbers in StartTraining', () => {
    for (const bad of [
      { learningRate: Number.NaN },
      { learningRate: Number.POSITIVE_INFINITY },
      { learningRate: -1 },
      { weightDecay: Number.NaN },
      { balanceWeight: -0.1 },
      { routerNoise: Number.NaN },
      { epochs: 4294967295 },
      { batchSize: 5000 },
      { experts: 65 },
      { schedule: 77 },
      { mode: 9 },
      { dataset: { source: { $case: 'uri' as const, value: 'cifar10:/d' }, split: 9, limit: 0 } },
    ]) {
      expect(refusal(() => normaliseTrainingRequest(training(bad))).code, JSON.stringify(bad)).toBe(
        'INVALID_ARGUMENT',
      );
    }
    expect(normaliseTrainingRequest(training({})).epochs).toBe(10);
  });

  it('refuses non-finite numbers and unknown enums in SubmitForget', () => {
    for (const bad of [
      { learningRate: Number.NaN },
      { lambda: Number.NaN },
      { lambda: Number.NEGATIVE_INFINITY },
      { retainFraction: Number.NaN },
      { retainFraction: 1.5 },
      { epochs: 101 },
      { method: 42 as ForgetMethod },
      { loss: 9 },
      { measure: 5 },
      { anchor: Number.NaN },
      { anchor: -1 },
      { anchor: 1001 },
      { method: ForgetMethod.FORGET_METHOD_FINETUNE, anchor: 1 },
    ]) {
      expect(refusal(() => normaliseForgetOptions(forget(bad))).code, JSON.stringify(bad)).toBe(
        'INVALID_ARGUMENT',
      );
    }
  });

  it('takes subject ids, sorted and once each, and bounds them', () => {
    const subjects = (ids: string[], fields: Partial<SubmitForgetRequest> = {}) =>
      forget({ target: { $case: 'subjectIds', value: { ids } }, ...fields });
    // The model decides the method (admission): sisa replay, or the joint default.
    expect(normaliseForgetOptions(subjects(['s9', 'customer 4711', 's9']))).toEqual({
      method: 'samples',
      subjects: ['customer 4711', 's9'],
      maskOutput: false,
      seed: 0,
    });
    expect(
      normaliseForgetOptions(
        subjects(['s1'], { method: ForgetMethod.FORGET_METHOD_SISA_REPLAY, epochs: 3 }),
      ),
    ).toEqual({ method: 'sisa-replay', subjects: ['s1'], maskOutput: false, seed: 0 });
    expect(
      normaliseForgetOptions(
        subjects(['s1'], { method: ForgetMethod.FORGET_METHOD_NEGGRAD_PLUS, epochs: 3, lambda: 2 }),
      ),
    ).toEqual({
      method: 'samples',
      sampleMethod: 'neggrad+',
      subjects: ['s1'],
      epochs: 3,
      lambda: 2,
      maskOutput: false,
      seed: 0,
    });
    // neggrad+'s anchor (and the default method's, which is neggrad+ on a joint model).
    expect(
      normaliseForgetOptions(
        subjects(['s1'], { method: ForgetMethod.FORGET_METHOD_NEGGRAD_PLUS, anchor: 0 }),
      ),
    ).toMatchObject({ sampleMethod: 'neggrad+', anchor: 0 });
    expect(normaliseForgetOptions(subjects(['s1'], { anchor: 2 }))).toMatchObject({ anchor: 2 });
    for (const [request, message] of [
      [
        subjects(['s1'], { method: ForgetMethod.FORGET_METHOD_SCRUB, anchor: 1 }),
        /anchor applies to neggrad\+ among the sample methods, not scrub/,
      ],
      [subjects(['s1'], { anchor: Number.NaN }), /anchor/],
      [subjects(['s1'], { anchor: 1001 }), /anchor/],
      [subjects([]), /subject_ids is empty/],
      [subjects([' padded']), /malformed subject id/],
      [subjects(['x'.repeat(257)]), /malformed subject id/],
      [subjects(Array.from({ length: 1001 }, (_, i) => `s${i}`)), /at most 1000/],
      [subjects(['s1'], { maskOutput: true }), /mask_output applies to a class target only/],
      [
        subjects(['s1'], { method: ForgetMethod.FORGET_METHOD_TARGETED }),
        /not FORGET_METHOD_TARGETED/,
      ],
      [subjects(['s1'], { select: 'top:1' }), /apply to a class target only/],
      [
        forget({
          target: { $case: 'className', value: 'cat' },
          method: ForgetMethod.FORGET_METHOD_SCRUB,
        }),
        /forgets samples or subjects of a joint model/,
      ],
    ] as const) {
      expect(refusal(() => normaliseForgetOptions(request))).toEqual({
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(message),
      });
    }
  });

  it('lists samples by exactly one selector', () => {
    expect(normaliseListSamples({ selector: { $case: 'shard', value: 0 } })).toEqual({ shard: 0 });
    expect(normaliseListSamples({ selector: { $case: 'subject', value: 's1' } })).toEqual({
      subject: 's1',
    });
    expect(refusal(() => normaliseListSamples({ selector: undefined })).code).toBe(
      'INVALID_ARGUMENT',
    );
    const long = { selector: { $case: 'className' as const, value: 'c'.repeat(257) } };
    expect(refusal(() => normaliseListSamples(long)).code).toBe('INVALID_ARGUMENT');
  });

  it("leaves SubmitForget's unset recipe fields to the library's default recipe", () => {
    const options = normaliseForgetOptions(forget({}));
    for (const field of [
      'epochs',
      'learningRate',
      'lambda',
      'retainFraction',
      'anchor',
      'batchSize',
      'loss',
      'measure',
    ] as const) {
      expect(options[field], field).toBeUndefined();
    }
    expect(
      normaliseForgetOptions(
        forget({ epochs: 3, anchor: 0, measure: MeasureMode.MEASURE_MODE_FULL, lambda: 2 }),
      ),
    ).toMatchObject({ epochs: 3, anchor: 0, measure: 'full', lambda: 2 });
  });

  it('routes each image to 2 experts by default, to every expert of a sisa model, with its defaults', () => {
    expect(normaliseTrainingRequest(training({ experts: 8 })).topK).toBe(2);
    const sisa = training({ mode: TrainingMode.TRAINING_MODE_SISA, experts: 8 });
    expect(normaliseTrainingRequest(sisa).topK).toBe(8);
    expect(normaliseTrainingRequest({ ...sisa, topK: 2 }).topK).toBe(2);
    // Unset sisa options are the library's defaults, as `lethe train --mode sisa` gets them.
    expect(normaliseTrainingRequest(training({})).epochs).toBe(10);
    expect(normaliseTrainingRequest(sisa).epochs).toBe(DEFAULT_SISA_OPTIONS.epochsPerSlice);
    expect(normaliseTrainingRequest(sisa).sisa).toEqual({
      slices: DEFAULT_SISA_OPTIONS.slices,
      routerEpochs: DEFAULT_SISA_OPTIONS.routerEpochs,
    });
    expect(refusal(() => normaliseTrainingRequest({ ...sisa, topK: 9 }))).toEqual({
      code: 'INVALID_ARGUMENT',
      message: 'top_k (9) must not exceed experts (8)',
    });
  });

  it('takes specialize_weight in [0, 100], the model default when unset', () => {
    expect(normaliseTrainingRequest(training({})).specializeWeight).toBe(DEFAULT_SPECIALIZE_WEIGHT);
    expect(normaliseTrainingRequest(training({ specializeWeight: 0 })).specializeWeight).toBe(0);
    for (const bad of [Number.NaN, -1, 101]) {
      expect(
        refusal(() => normaliseTrainingRequest(training({ specializeWeight: bad }))).code,
      ).toBe('INVALID_ARGUMENT');
    }
  });

  it('takes a subject table path, none when empty; control characters are refused', () => {
    expect(normaliseTrainingRequest(training({})).subjects).toBeUndefined();
    expect('subjects' in normaliseTrainingRequest(training({}))).toBe(false);
    expect(normaliseTrainingRequest(training({ subjects: '/data/subjects.csv' })).subjects).toBe(
      '/data/subjects.csv',
    );
    for (const bad of ['a\u0000b', 'a\nb', 'x'.repeat(5000)]) {
      expect(refusal(() => normaliseTrainingRequest(training({ subjects: bad }))).code).toBe(
        'INVALID_ARGUMENT',
      );
    }
  });

  it('echoes at most about 100 characters of a bad value', () => {
    const huge = 'x'.repeat(10 * 1024 * 1024);
    for (const check of [
      () => normaliseForgetOptions(forget({ target: { $case: 'className', value: huge } })),
      () => normaliseForgetOptions(forget({ requestId: huge })),
      () => normaliseTrainingRequest(training({ preset: huge })),
      () =>
        normaliseTrainingRequest(
          training({ dataset: { source: { $case: 'uri', value: `nope:${huge}` } } as never }),
        ),
    ]) {
      const { code, message } = refusal(check);
      expect(code).toBe('INVALID_ARGUMENT');
      expect(message.length).toBeLessThan(300);
    }
  });

  it('honours DatasetSpec.limit and bounds Evaluate and Predict', () => {
    const evaluate = normaliseEvaluateRequest(
      EvaluateRequest.fromPartial({
        dataset: { source: { $case: 'uri', value: 'cifar10:/data' }, limit: 100 },
      }),
    );
    expect(evaluate).toMatchObject({ dataset: { limit: 100 }, batchSize: 256 });
    expect(
      refusal(() => normaliseEvaluateRequest(EvaluateRequest.fromPartial({ batchSize: 5000 })))
        .code,
    ).toBe('INVALID_ARGUMENT');
    const image = { data: Buffer.alloc(12), height: 2, width: 2, channels: 3 };
    expect(() =>
      checkPredictRequest(PredictRequest.fromPartial({ images: [image] })),
    ).not.toThrow();
    for (const images of [
      [],
      Array.from({ length: 513 }, () => image),
      [{ ...image, data: Buffer.alloc(11) }],
      [{ ...image, height: 0 }],
    ]) {
      expect(refusal(() => checkPredictRequest(PredictRequest.fromPartial({ images }))).code).toBe(
        'INVALID_ARGUMENT',
      );
    }
  });
});
