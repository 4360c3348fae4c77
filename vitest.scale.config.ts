import { defineConfig } from 'vitest/config';

/**
 * The scale-out suite (`npm run test:scale`): several daemon processes against one Redis, a Redis
 * Cluster. Slower than the main suite and run on its own; files run one after another because each
 * one loads the machine on purpose.
 */
export default defineConfig({
  test: {
    // The AWS SDK's notice that its 2027 releases need Node 22 (README: Quick start), once per process.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['test/scale/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
