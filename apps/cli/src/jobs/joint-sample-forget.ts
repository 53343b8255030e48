import { limitTrainingSet } from '@lethe/data';
import { readTrainingRecord } from '@lethe/model';
import { ManifestStore, type ObjectStore } from '@lethe/store';
import {
  defaultOutputThreads,
  forgetJointSamples,
  ForgetRequestError,
  previewSampleForget,
  type SampleForgetPreview,
  type SampleForgetReceipt,
  type SampleForgetRequest,
} from '@lethe/unlearning';
import { startEngine } from '../terminal/engine';
import { CliError } from '../terminal/errors';
import { stepProgress } from '../terminal/progress';
import { openData } from './open-data';
import { requireTrainedModel, storedTrainingSubset } from './training-data';

/** `lethe forget --samples|--subject` on a joint model, after the command checked its flags. */
export interface JointSampleForgetJob {
  store: ObjectStore;
  request: SampleForgetRequest & { requestId: string };
  /** The model's training data; default: the dataset it was trained on. */
  data?: string;
  dryRun: boolean;
  /** Threads the measurement may use; default: one per core (at most 4) on the wasm engine. */
  measureThreads?: number;
}

const CODE_WORDS: Record<ForgetRequestError['code'], string> = {
  'invalid-argument': 'invalid argument',
  'not-found': 'not found',
  'failed-precondition': 'failed precondition',
  'already-exists': 'already exists',
};

/**
 * Forgets training samples of the stored joint model approximately (libs/unlearning's
 * forgetJointSamples), or with `dryRun` prints what it would retrain and cost and changes
 * nothing. A refusal is one line naming its kind (not found, failed precondition, ...).
 */
export async function runJointSampleForget(
  job: JointSampleForgetJob,
): Promise<SampleForgetReceipt | SampleForgetPreview> {
  await requireTrainedModel(job.store);
  const trained = await storedTrainingSubset(job.store);
  const spec = job.data ?? readTrainingRecord(await new ManifestStore(job.store).read())?.dataset;
  if (spec === undefined) {
    throw new CliError("the stored model does not name its training data: give '--data <spec>'");
  }
  const [fullTrain, test] = await Promise.all([openData(spec, 'train'), openData(spec, 'test')]);
  const train = limitTrainingSet(fullTrain, trained.limit, trained.seed);
  await startEngine();
  const ctx = {
    store: job.store,
    train,
    test,
    onStatus: (m: string) => process.stderr.write(`${m}\n`),
    measureThreads: job.measureThreads ?? defaultOutputThreads(),
  };
  try {
    if (job.dryRun) return await previewSampleForget(ctx, job.request);
    const progress = stepProgress('forget');
    try {
      return await forgetJointSamples({ ...ctx, onStep: progress.onStep }, job.request);
    } finally {
      progress.stop();
    }
  } catch (error) {
    if (error instanceof ForgetRequestError) {
      throw new CliError(`${CODE_WORDS[error.code]}: ${error.message}`);
    }
    throw error;
  }
}
