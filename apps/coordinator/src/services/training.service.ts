import { Inject, Injectable } from '@nestjs/common';
import type { Dataset } from '@lethe/data';
import { loadSubjectTable } from '@lethe/ledger';
import type { Job, StartTrainingRequest } from '@lethe/proto';
import { alreadyExists, failedPrecondition } from '@lethe/rpc';
import {
  datasetError,
  fingerprint,
  normaliseTrainingRequest,
  subjectTableError,
} from '../contract/request-validation';
import type { TrainingRequest } from '../contract/training-request';
import { JobsService } from '../jobs/jobs.service';
import { ModelStateService } from '../model/model-state.service';
import { WorkersService } from '../workers/workers.service';

/**
 * StartTraining: admission of a training job (idempotency, capacity, the dataset's presence, its
 * subject table).
 */
@Injectable()
export class TrainingService {
  constructor(
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(WorkersService) private readonly workers: WorkersService,
    @Inject(ModelStateService) private readonly models: ModelStateService,
  ) {}

  /** Queues a training job, or returns the one that already holds the request id. */
  start(request: StartTrainingRequest): Promise<Job> {
    const normalised = normaliseTrainingRequest(request);
    const print = fingerprint(normalised);
    // Under the admission lock: a retry racing its original gets the original's job.
    return this.jobs.admit(async () => {
      if (request.requestId) {
        const previous = this.jobs.repository.byRequestId('training', request.requestId);
        if (previous && !['failed', 'cancelled'].includes(previous.state)) {
          if (previous.fingerprint !== print) {
            throw alreadyExists(
              `request_id ${request.requestId} was used for a different training request`,
            );
          }
          return this.jobs.toProto(previous);
        }
      }
      if (this.jobs.active('training').length > 0) {
        throw failedPrecondition('another training job is queued or running');
      }
      const capacity = this.workers.placement.capacity();
      if (capacity < normalised.experts) {
        throw failedPrecondition(
          `${normalised.experts} experts need that much worker capacity; the ${this.workers.registry.live().length} live workers offer ${capacity}`,
        );
      }
      let train: Dataset;
      try {
        train = await this.models.state.dataset(normalised.dataset, 'train');
      } catch (error) {
        throw datasetError(normalised.dataset, error);
      }
      const { job } = this.jobs.submit({
        kind: 'training',
        requestId: request.requestId,
        fingerprint: print,
        request: { ...normalised, ...(await this.checkSubjects(normalised, train)) },
      });
      return this.jobs.toProto(job);
    });
  }

  /**
   * The subject table checked against the full dataset, as `lethe train --subjects` checks it;
   * its hash goes with the job, which trains with these bytes or fails.
   */
  private async checkSubjects(
    request: TrainingRequest,
    train: Dataset,
  ): Promise<{ subjectsSha256?: string }> {
    if (request.subjects === undefined) return {};
    const test = await this.models.state.dataset(request.dataset, 'test').catch(() => undefined);
    try {
      const table = await loadSubjectTable(request.subjects, test ? [train, test] : [train]);
      return { subjectsSha256: table.sha256 };
    } catch (error) {
      throw subjectTableError(request.subjects, error);
    }
  }
}
