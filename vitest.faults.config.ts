import { defineConfig } from 'vitest/config';

/**
 * The fault-injection suite (`npm run test:faults`): daemons as real child processes against an FTP
 * server, S3 and Redis that fail on purpose. Not part of `npm test` (see vitest.config.ts); two files
 * run at a time, which keeps a 2-core machine busy without starving the daemons' timers.
 */
export default defineConfig({
  test: {
    // The AWS SDK's notice that its 2027 releases need Node 22 (README: Quick start), once per process.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
