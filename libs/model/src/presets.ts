/** One stage: `convs` × (3×3 conv → batch norm → ReLU), then an optional 2×2 max-pool. */
export interface ConvStage {
  filters: number;
  convs: number;
  pool: boolean;
}

/** A small CNN: convolution stages, then a head that maps features to outputs. */
export interface ConvNetSpec {
  stages: ConvStage[];
  /** `gap` averages each channel over space; `flatten` keeps the spatial layout. */
  head: 'gap' | 'flatten';
}

export interface ModelPreset {
  name: string;
  description: string;
  router: ConvNetSpec;
  expert: ConvNetSpec;
}

const stage = (filters: number, convs = 1, pool = true): ConvStage => ({ filters, convs, pool });

export const PRESETS: Readonly<Record<string, ModelPreset>> = {
  tiny: {
    name: 'tiny',
    description: 'for tests: a few thousand parameters, trains in milliseconds',
    router: { stages: [stage(4), stage(8)], head: 'gap' },
    expert: { stages: [stage(8), stage(16)], head: 'gap' },
  },
  small: {
    name: 'small',
    description: 'CIFAR-sized default: 3-stage expert (32-64-128), 2-stage router (16-32)',
    router: { stages: [stage(16), stage(32)], head: 'gap' },
    expert: { stages: [stage(32), stage(64), stage(128)], head: 'flatten' },
  },
  medium: {
    name: 'medium',
    description: 'wider and deeper experts (64-64, 128-128, 256) for GPU workers',
    router: { stages: [stage(16), stage(32), stage(64)], head: 'gap' },
    expert: { stages: [stage(64, 2), stage(128, 2), stage(256)], head: 'flatten' },
  },
};

export function getPreset(name: string): ModelPreset {
  const preset = PRESETS[name];
  if (!preset) {
    throw new Error(`unknown preset '${name}' (known: ${Object.keys(PRESETS).join(', ')})`);
  }
  return preset;
}
