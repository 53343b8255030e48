import { z } from 'zod';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a lower-case hex SHA-256');
const requestId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a request id');
const instant = z.iso.datetime();

/** A completed forget: what it erased, which request asked, and the receipt that proves it. */
export const ErasureEventSchema = z.object({
  kind: z.literal('erase'),
  seq: z.number().int().min(1),
  at: instant,
  requestId,
  /** The receipt published in the same manifest revision as this event. */
  receipt: z.object({ key: z.string().min(1), sha256 }),
  mode: z.enum(['exact', 'approximate']),
  /** Class names: every sample of the class, in any later training set. */
  classes: z.array(z.string().min(1)),
  /** Sample ids (`dataset:split:index`). */
  sampleIds: z.array(z.string().min(1)),
  /** Data subjects: every sample a later subject table maps to them. */
  subjects: z.array(z.string().min(1)),
});

/** An operator took an erasure back: it stops binding later trainings, and says who and why. */
export const DropEventSchema = z.object({
  kind: z.literal('drop'),
  seq: z.number().int().min(1),
  at: instant,
  /** The request id of the erasure dropped. */
  requestId,
  reason: z.string().min(1).max(1000),
  by: z.string().min(1).max(200),
});

export const LedgerEventSchema = z.discriminatedUnion('kind', [
  ErasureEventSchema,
  DropEventSchema,
]);

/**
 * One version of the ledger, stored content-addressed and named by the manifest. Each version
 * holds every event of the one before (`previous`, its hash) plus new ones: events are only
 * ever appended, and a drop is itself an event.
 */
export const LedgerDocumentSchema = z
  .object({
    schema: z.literal(1),
    previous: sha256.nullable(),
    events: z.array(LedgerEventSchema),
  })
  .superRefine((doc, ctx) => {
    doc.events.forEach((event, i) => {
      if (event.seq !== i + 1) {
        ctx.addIssue({ code: 'custom', message: `event ${i} has seq ${event.seq}, not ${i + 1}` });
      }
    });
  });

export type ErasureEvent = z.infer<typeof ErasureEventSchema>;
export type DropEvent = z.infer<typeof DropEventSchema>;
export type LedgerEvent = z.infer<typeof LedgerEventSchema>;
export type LedgerDocument = z.infer<typeof LedgerDocumentSchema>;
