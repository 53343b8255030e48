import { type Dataset, formatSampleId, parseSampleId, positionOfIndex, subset } from '@lethe/data';
import { ManifestStore, type ObjectStore } from '@lethe/store';
import {
  type Erased,
  erasedOf,
  LedgerError,
  type LedgerStamp,
  ledgerStamp,
  readLedger,
} from './ledger';
import type { SubjectTable } from './subjects';

/** What a training record says about the ledger it honoured. */
export interface HonouredLedger extends LedgerStamp {
  /** The manifest revision the ledger was read from. */
  manifestRevision: number;
  excluded: { samples: number; classes: string[]; subjects: string[] };
  /** Erased sample ids not in this training set (other data, or outside its subset). */
  notInTrainingSet: number;
}

/**
 * The training set without what `erased` holds: samples by id, every sample of an erased class
 * (by name), and every sample the subject table gives to an erased subject.
 */
export function excludeErased(
  train: Dataset,
  erased: Erased,
  subjects?: SubjectTable,
): { train: Dataset; excluded: HonouredLedger['excluded']; notInTrainingSet: number } {
  const erasedClasses = new Set(train.classes.filter((c) => erased.classes.has(c)));
  const keep: number[] = [];
  const hitSubjects = new Set<string>();
  for (let p = 0; p < train.size; p++) {
    const id = formatSampleId(train.name, train.split, train.indices[p]!);
    const subject = subjects?.subjectOf.get(id);
    const bySubject = subject !== undefined && erased.subjects.has(subject);
    if (bySubject) hitSubjects.add(subject);
    if (
      bySubject ||
      erased.sampleIds.has(id) ||
      erasedClasses.has(train.classes[train.labels[p]!]!)
    )
      continue;
    keep.push(p);
  }
  let notInTrainingSet = 0;
  for (const id of erased.sampleIds) {
    const ref = parseSampleId(id);
    const held =
      ref.dataset === train.name &&
      ref.split === train.split &&
      positionOfIndex(train, ref.index) >= 0;
    if (!held) notInTrainingSet++;
  }
  return {
    train: keep.length === train.size ? train : subset(train, keep),
    excluded: {
      samples: train.size - keep.length,
      classes: [...erasedClasses].sort(),
      subjects: [...hitSubjects].sort(),
    },
    notInTrainingSet,
  };
}

/**
 * The training set a new model on this store may see: the given one without everything the
 * store's erasure ledger holds. Publish the model with `expectRevision` from
 * `revisionHonouring`, so that an erasure published meanwhile cannot be skipped.
 */
export async function honourLedger(
  store: ObjectStore,
  train: Dataset,
  subjects?: SubjectTable,
): Promise<{ train: Dataset; honoured: HonouredLedger }> {
  const manifest = await new ManifestStore(store).read();
  const ledger = await readLedger(store, manifest);
  const result = excludeErased(train, erasedOf(ledger), subjects);
  return {
    train: result.train,
    honoured: {
      ...ledgerStamp(ledger),
      manifestRevision: manifest?.revision ?? 0,
      excluded: result.excluded,
      notInTrainingSet: result.notInTrainingSet,
    },
  };
}

/**
 * The manifest revision to publish on: the current one, if its ledger is still the one the
 * training honoured. @throws LedgerError (failed-precondition) when an erasure or a drop was
 * published meanwhile — the model would not honour it.
 */
export async function revisionHonouring(
  store: ObjectStore,
  honoured: LedgerStamp,
): Promise<number> {
  const manifest = await new ManifestStore(store).read();
  const now = ledgerStamp(await readLedger(store, manifest));
  if (now.sha256 !== honoured.sha256) {
    throw new LedgerError(
      `the erasure ledger changed while training (${honoured.events} → ${now.events} events); ` +
        'this model does not honour the new entries and was not published: train again',
      'failed-precondition',
    );
  }
  return manifest?.revision ?? 0;
}

/** One line for a training log: what the ledger excluded, and what it held that was not here. */
export function describeHonoured(h: HonouredLedger): string {
  if (h.events === 0) return 'erasure ledger: empty, nothing to exclude';
  const what = [
    ...(h.excluded.classes.length > 0 ? [`classes ${h.excluded.classes.join(', ')}`] : []),
    ...(h.excluded.subjects.length > 0 ? [`subjects ${h.excluded.subjects.join(', ')}`] : []),
  ];
  return (
    `erasure ledger (${h.erasures} erasures, ${h.events} events, ${h.sha256!.slice(0, 12)}): ` +
    `excluded ${h.excluded.samples} training samples${what.length ? ` (${what.join('; ')})` : ''}` +
    (h.notInTrainingSet > 0
      ? `; ${h.notInTrainingSet} erased sample ids are not in this training set (nothing to exclude for them)`
      : '')
  );
}
