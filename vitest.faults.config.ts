import { defineConfig } from 'vitest/config';

/**
 * The fault-injection suite (`npm run test:faults`): daemons as real child processes against an FTP
 * server, S3 and Redis that fail on purpose. Not part of `npm test` (see vitest.config.ts); two files
 * run at a time, which keeps a 2-core machine busy without starving the daemons' timers.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
