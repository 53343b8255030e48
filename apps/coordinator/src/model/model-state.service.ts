import { Inject, Injectable } from '@nestjs/common';
import type { ObjectStore } from '@lethe/store';
import { OBJECT_STORE } from '../config/tokens';
import { ModelState } from './current-model';

/** The current model as the store names it, and datasets opened on the coordinator. */
@Injectable()
export class ModelStateService {
  readonly state: ModelState;

  constructor(@Inject(OBJECT_STORE) store: ObjectStore) {
    this.state = new ModelState(store);
  }
}
