import { defineConfig } from 'vitest/config';

// Tests import workspace libraries from their TypeScript sources (the `@lethe/source`
// export condition), so no build is needed before `vitest run`.
export default defineConfig({
  resolve: { conditions: ['@lethe/source'] },
  ssr: { resolve: { conditions: ['@lethe/source'] } },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
