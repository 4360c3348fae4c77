import { defineConfig } from 'vitest/config';

/**
 * The scale-out suite (`npm run test:scale`): several daemon processes against one Redis, a Redis
 * Cluster. Slower than the main suite and run on its own; files run one after another because each
 * one loads the machine on purpose.
 */
export default defineConfig({
  test: {
    include: ['test/scale/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
