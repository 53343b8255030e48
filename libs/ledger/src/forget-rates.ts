import type { JsonValue, Manifest } from '@lethe/store';
import { z } from 'zod';

/**
 * The manifest attribute holding the rates the last forget of each kind ran at on this store,
 * published in the same revision as that forget's receipt: a dry run's estimate reads it instead
 * of guessing from the model's training rate.
 */
export const FORGET_RATES_ATTRIBUTE = 'forgetRates';

export const ForgetRateSchema = z.object({
  /** The forget request whose run this was measured on. */
  requestId: z.string(),
  measuredAt: z.string(),
  /** The model shape it ran on (`preset/experts/topK`): another shape's rate does not apply. */
  model: z.string(),
  /** Images per second over its retraining epochs (the forgetting step's own batches). */
  retrainingRate: z.number().positive(),
  /** Samples per second its "after" measurement ran the new weights at. */
  inferenceRate: z.number().positive(),
});
export type ForgetRate = z.infer<typeof ForgetRateSchema>;

/** Keyed by the kind of request and its method (`class:targeted`, `samples:neggrad+`, …). */
const ForgetRatesSchema = z.record(z.string(), ForgetRateSchema);
export type ForgetRates = z.infer<typeof ForgetRatesSchema>;

/** The key a forget's rate is kept under: runs of one kind and method cost alike per sample. */
export const forgetRateKey = (kind: 'class' | 'samples', method: string): string =>
  `${kind}:${method}`;

/** The shape key of a model, as `ForgetRate.model`. */
export const forgetRateModel = (config: {
  preset: string;
  experts: number;
  topK: number;
}): string => `${config.preset}/${config.experts}/${config.topK}`;

/** The stored rates; an attribute that does not parse is ignored (an estimate, not a record). */
export function readForgetRates(manifest: Manifest): ForgetRates {
  const parsed = ForgetRatesSchema.safeParse(manifest.attributes[FORGET_RATES_ATTRIBUTE]);
  return parsed.success ? parsed.data : {};
}

/** The attribute value with `rate` stored under `key`, the other kinds' rates kept. */
export function withForgetRate(manifest: Manifest, key: string, rate: ForgetRate): JsonValue {
  return { ...readForgetRates(manifest), [key]: ForgetRateSchema.parse(rate) };
}
