import { Inject, Injectable } from '@nestjs/common';
import type {
  EvaluateRequest,
  EvaluateResponse,
  PredictRequest,
  PredictResponse,
} from '@lethe/proto';
import { checkPredictRequest, normaliseEvaluateRequest } from '../contract/request-validation';
import { type CancellableCall, EngineService } from '../engine/engine.service';

/**
 * Predict and Evaluate: checked against the request contract here, answered by the serving
 * engine thread from the published revision (which each answer names), during jobs too.
 */
@Injectable()
export class ServingService {
  constructor(@Inject(EngineService) private readonly engine: EngineService) {}

  predict(request: PredictRequest, call: CancellableCall): Promise<PredictResponse> {
    checkPredictRequest(request);
    return this.engine.predict({ images: request.images }, call);
  }

  evaluate(request: EvaluateRequest, call: CancellableCall): Promise<EvaluateResponse> {
    return this.engine.evaluate(normaliseEvaluateRequest(request), call);
  }
}
