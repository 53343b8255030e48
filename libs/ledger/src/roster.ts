import { type Dataset, formatSampleId } from '@lethe/data';
import { type Manifest, type ObjectRef, type ObjectStore, putContent } from '@lethe/store';
import { z } from 'zod';
import { readNamedJson } from './stored-json';
import type { Erased } from './ledger';
import type { SubjectTable } from './subjects';

/** The manifest object naming the roster of the model's training set. */
export const ROSTER_OBJECT = 'roster';

/**
 * The samples a model was trained on — their ids, labels and data subjects — stored with it,
 * so that requests can be answered from the store alone: which samples of a class or a
 * subject the model holds, and what a subject's erasure expands to.
 */
export const RosterSchema = z
  .object({
    schema: z.literal(1),
    dataset: z.string().min(1),
    split: z.literal('train'),
    classes: z.array(z.string()),
    /** Original dataset indices, increasing. */
    indices: z.array(z.number().int().min(0)),
    labels: z.array(z.number().int().min(0)),
    /** Subject of each sample (null: none in the table); null without a table. */
    subjects: z.array(z.string().nullable()).nullable(),
    /** SHA-256 of the subject table the subjects came from. */
    subjectTable: z.string().nullable(),
  })
  .refine(
    (r) =>
      r.labels.length === r.indices.length &&
      (r.subjects === null || r.subjects.length === r.indices.length),
    'indices, labels and subjects must have one entry per sample',
  );

export type Roster = z.infer<typeof RosterSchema>;

/** One sample of a roster, as listed to users. */
export interface RosterSample {
  sampleId: string;
  index: number;
  className: string;
  subject: string | null;
}

export function buildRoster(train: Dataset, subjects?: SubjectTable): Roster {
  const indices = Array.from(train.indices);
  return {
    schema: 1,
    dataset: train.name,
    split: 'train',
    classes: [...train.classes],
    indices,
    labels: Array.from(train.labels),
    subjects: subjects
      ? indices.map((i) => subjects.subjectOf.get(formatSampleId(train.name, 'train', i)) ?? null)
      : null,
    subjectTable: subjects?.sha256 ?? null,
  };
}

export function storeRoster(store: ObjectStore, roster: Roster): Promise<ObjectRef> {
  const bytes = new TextEncoder().encode(JSON.stringify(roster));
  return putContent(store, bytes, { kind: 'roster' });
}

/** The roster the manifest (default: the current one) names; undefined for older models. */
export async function readRoster(
  store: ObjectStore,
  manifest?: Manifest,
): Promise<Roster | undefined> {
  return (await readNamedJson(store, manifest, ROSTER_OBJECT, RosterSchema, 'roster'))?.value;
}

export function rosterSamples(roster: Roster): RosterSample[] {
  return roster.indices.map((index, p) => ({
    sampleId: formatSampleId(roster.dataset, 'train', index),
    index,
    className: roster.classes[roster.labels[p]!] ?? String(roster.labels[p]),
    subject: roster.subjects?.[p] ?? null,
  }));
}

/** Subjects with at least one sample in the roster, sorted. */
export function rosterSubjects(roster: Roster): string[] {
  return [...new Set((roster.subjects ?? []).filter((s): s is string => s !== null))].sort();
}

/** What a training record says about subjects: the table's hash and how many are in the set. */
export function subjectsRecord(
  roster: Roster,
): { table: string; subjects: number; samplesWithSubject: number } | null {
  if (roster.subjectTable === null) return null;
  return {
    table: roster.subjectTable,
    subjects: rosterSubjects(roster).length,
    samplesWithSubject: (roster.subjects ?? []).filter((s) => s !== null).length,
  };
}

/** The roster's samples the ledger does not hold: what the model still answers for. */
export function heldSamples(roster: Roster, erased: Erased): RosterSample[] {
  return rosterSamples(roster).filter(
    (s) =>
      !erased.sampleIds.has(s.sampleId) &&
      !erased.classes.has(s.className) &&
      (s.subject === null || !erased.subjects.has(s.subject)),
  );
}
