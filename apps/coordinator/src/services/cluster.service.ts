import { Inject, Injectable } from '@nestjs/common';
import {
  ExpertStatus,
  type ListExpertsResponse,
  type ListWorkersResponse,
  WorkerState,
} from '@lethe/proto';
import { EngineService } from '../engine/engine.service';
import { JobsService } from '../jobs/jobs.service';
import { ModelStateService } from '../model/model-state.service';
import { WorkersService } from '../workers/workers.service';

const WORKER_STATES = {
  alive: WorkerState.WORKER_STATE_ALIVE,
  suspect: WorkerState.WORKER_STATE_SUSPECT,
  lost: WorkerState.WORKER_STATE_LOST,
};

/** ListExperts and ListWorkers: the current model's experts and the workers, as they are now. */
@Injectable()
export class ClusterService {
  /** Trainable parameters of one expert, by model config (counted once, in an engine thread). */
  private readonly parameters = new Map<string, number>();

  constructor(
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(WorkersService) private readonly workers: WorkersService,
    @Inject(ModelStateService) private readonly models: ModelStateService,
    @Inject(EngineService) private readonly engine: EngineService,
  ) {}

  async experts(): Promise<ListExpertsResponse> {
    const current = await this.models.state.current();
    if (!current) return { experts: [], manifestRevision: 0 };
    const { config } = current.card;
    // After a restart nothing is placed until a job or a serving call asks: place now, so the
    // listing shows where the experts will live rather than UNASSIGNED.
    this.workers.placement.setExpertCount(config.experts, 'serving');
    const retraining = this.jobs.retrainingExperts();
    const key = JSON.stringify(config);
    let parameters = this.parameters.get(key);
    if (parameters === undefined) {
      parameters = await this.engine.expertParameters(config);
      this.parameters.set(key, parameters);
    }
    return {
      manifestRevision: current.manifest.revision,
      experts: Array.from({ length: config.experts }, (_, e) => {
        const worker = this.workers.placement.workerOf(e);
        return {
          expertId: e,
          workerId: worker?.id ?? '',
          workerAddress: worker?.address ?? '',
          checkpoint: current.manifest.objects[`expert/${e}`],
          status: !worker
            ? ExpertStatus.EXPERT_STATUS_UNASSIGNED
            : retraining.has(e)
              ? ExpertStatus.EXPERT_STATUS_TRAINING
              : ExpertStatus.EXPERT_STATUS_READY,
          parameters: parameters!,
        };
      }),
    };
  }

  workerList(): ListWorkersResponse {
    const placement = this.workers.placement.snapshot();
    return {
      workers: this.workers.registry.all().map((w) => ({
        workerId: w.id,
        address: w.address,
        device: w.device,
        capacity: { maxExperts: w.maxExperts },
        lastHeartbeat: w.lastHeartbeat,
        state: WORKER_STATES[w.state],
        expertIds:
          w.state === 'lost'
            ? []
            : [...placement]
                .filter(([, id]) => id === w.id)
                .map(([e]) => e)
                .sort((a, b) => a - b),
        load: w.load,
        registeredAt: w.registeredAt,
      })),
    };
  }
}
