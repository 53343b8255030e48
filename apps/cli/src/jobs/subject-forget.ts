import { isClassReceipt, readReceipt } from '@lethe/ledger';
import { loadSisa, type SisaReceipt } from '@lethe/sisa';
import type { ObjectStore } from '@lethe/store';
import type {
  SampleForgetPreview,
  SampleForgetReceipt,
  SampleForgetRequest,
} from '@lethe/unlearning';
import { CliError } from '../terminal/errors';
import { startEngine } from '../terminal/engine';
import { runJointSampleForget } from './joint-sample-forget';
import { runSisaForgetJob, sisaProgress } from './sisa-jobs';
import { expandSubjects } from './subject-samples';

/** `lethe forget --subject`: parsed flags, after the command checked what it can alone. */
export interface SubjectForgetRequest {
  store: ObjectStore;
  subjects: string[];
  requestId: string;
  data?: string;
  /** On a joint model: the method and recipe fields given (the rest are the defaults). */
  recipe?: Omit<SampleForgetRequest, 'requestId' | 'sampleIds' | 'subjects'>;
  /** Print the plan and cost only (joint models). */
  dryRun?: boolean;
}

/**
 * Forgets every training sample of the given data subjects. On a sisa model that is the exact
 * replay of their samples; on a joint model the approximate retraining of the experts that saw
 * them (libs/unlearning's forgetJointSamples); either way with the subjects in the receipt and
 * the ledger. A subject already forgotten returns that receipt for the same request id, and is
 * refused for another one.
 */
export async function runSubjectForget(
  request: SubjectForgetRequest,
): Promise<SisaReceipt | SampleForgetReceipt | SampleForgetPreview> {
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
    return runJointSampleForget({
      store,
      request: { ...request.recipe, requestId, subjects },
      dryRun: request.dryRun ?? false,
      ...(request.data ? { data: request.data } : {}),
    });
  }
  if (request.dryRun || request.recipe) {
    throw new CliError(
      '--dry-run and recipe flags apply to a joint model; a sisa model forgets subjects by exact replay',
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

async function storedReceipt(
  store: ObjectStore,
  requestId: string,
): Promise<SisaReceipt | SampleForgetReceipt> {
  const receipt = await readReceipt(store, requestId);
  if (!receipt) throw new CliError(`no receipt ${requestId} in the store`);
  // The ledger names this request as a subject's erasure: a class receipt cannot be its proof.
  if (isClassReceipt(receipt)) {
    throw new CliError(`receipt ${requestId} is a class forget's, not a subject's`);
  }
  return receipt;
}
