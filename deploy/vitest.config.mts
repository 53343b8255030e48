import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../vitest.shared.mts';

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // Rendering, schema checks and one loopback gRPC server: seconds, not minutes.
      testTimeout: 30_000,
      hookTimeout: 30_000,
    },
  }),
);
