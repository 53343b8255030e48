import {
  erasedOf,
  heldSamples,
  readLedger,
  readRoster,
  type Roster,
  rosterSamples,
  type RosterSample,
} from '@lethe/ledger';
import { ManifestStore, type ObjectStore } from '@lethe/store';
import { CliError } from '../terminal/errors';

/** The roster of the stored model, or one line saying why there is none. */
export async function requireRoster(store: ObjectStore): Promise<Roster> {
  const manifest = await new ManifestStore(store).read();
  if (!manifest?.attributes['model']) {
    throw new CliError(`no trained model in ${store.describe()} (train one with npx lethe train)`);
  }
  const roster = await readRoster(store, manifest);
  if (!roster) {
    throw new CliError(
      'the stored model has no roster of its training samples (it was trained before rosters existed): train it again',
    );
  }
  return roster;
}

/** What a subject request expands to, or the request it was already forgotten by. */
export type SubjectExpansion =
  | { kind: 'samples'; sampleIds: string[] }
  | { kind: 'forgotten'; requestId: string; subject: string };

/**
 * The training samples of the given subjects in the stored model, for a forget request.
 * @throws CliError when the model has no subject table or a subject has no sample in it
 * (not found); nothing is changed either way.
 */
export async function expandSubjects(
  store: ObjectStore,
  subjects: readonly string[],
): Promise<SubjectExpansion> {
  const roster = await requireRoster(store);
  const erased = erasedOf(await readLedger(store));
  for (const erasure of erased.byRequest.values()) {
    const subject = subjects.find((s) => erasure.subjects.includes(s));
    if (subject !== undefined) return { kind: 'forgotten', requestId: erasure.requestId, subject };
  }
  if (roster.subjectTable === null) {
    throw new CliError(
      'not found: the stored model was trained without a subject table (lethe train --subjects FILE)',
    );
  }
  const samples = rosterSamples(roster);
  const sampleIds: string[] = [];
  for (const subject of subjects) {
    const own = samples.filter((s) => s.subject === subject).map((s) => s.sampleId);
    if (own.length === 0) {
      throw new CliError(
        `not found: subject ${JSON.stringify(subject)} has no sample in the stored model's training set`,
      );
    }
    sampleIds.push(...own);
  }
  return { kind: 'samples', sampleIds: [...new Set(sampleIds)].sort() };
}

/** The samples of the stored model that the erasure ledger does not hold. */
export async function currentSamples(store: ObjectStore): Promise<RosterSample[]> {
  const roster = await requireRoster(store);
  return heldSamples(roster, erasedOf(await readLedger(store)));
}
