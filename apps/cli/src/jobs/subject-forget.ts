import { loadSisa, type SisaReceipt } from '@lethe/sisa';
import { getVerified, ManifestStore, type ObjectStore } from '@lethe/store';
import { CliError } from '../terminal/errors';
import { startEngine } from '../terminal/engine';
import { runSisaForgetJob, sisaProgress } from './sisa-jobs';
import { expandSubjects } from './subject-samples';

/** `lethe forget --subject`: parsed flags, after the command checked what it can alone. */
export interface SubjectForgetRequest {
  store: ObjectStore;
  subjects: string[];
  requestId: string;
  data?: string;
}

/**
 * Forgets every training sample of the given data subjects. On a sisa model that is the exact
 * replay of their samples, with the subjects in the receipt and the ledger. A joint model
 * would need approximate sample forgetting, which does not exist yet: refused, nothing changed.
 * A subject already forgotten returns that receipt for the same request id, and is refused for
 * another one.
 */
export async function runSubjectForget(request: SubjectForgetRequest): Promise<SisaReceipt> {
  const { store, subjects, requestId } = request;
  const expansion = await expandSubjects(store, subjects);
  if (expansion.kind === 'forgotten') {
    if (expansion.requestId === requestId) return storedReceipt(store, requestId);
    throw new CliError(
      `failed precondition: subject ${expansion.subject}, erased by request ${expansion.requestId}, is already forgotten`,
    );
  }
  const sisa = await loadSisa(store).catch(() => undefined);
  if (!sisa) {
    throw new CliError(
      'failed precondition: the stored model is a joint model, and approximate sample forgetting on joint models is not built yet; ' +
        'train with --mode sisa to forget subjects exactly (nothing was changed)',
    );
  }
  await startEngine();
  const progress = sisaProgress();
  return runSisaForgetJob(
    store,
    {
      requestId,
      sampleIds: expansion.sampleIds,
      subjects,
      ...(request.data ? { data: request.data } : {}),
    },
    progress.onProgress,
  ).finally(() => progress.stop());
}

async function storedReceipt(store: ObjectStore, requestId: string): Promise<SisaReceipt> {
  const ref = (await new ManifestStore(store).read())?.objects[`receipt/${requestId}`];
  if (!ref) throw new CliError(`no receipt ${requestId} in the store`);
  return JSON.parse(new TextDecoder().decode(await getVerified(store, ref))) as SisaReceipt;
}
