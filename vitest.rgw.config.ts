import { defineConfig } from 'vitest/config';

/**
 * `npm run test:rgw`: tests against Ceph's RADOS Gateway, the production-grade S3 on loopback
 * (test/support/rgw.ts; docs/rgw.md). Each file starts one gateway in `beforeAll` (5-15 s), so these
 * are kept out of `npm test` by vitest.config.ts. Without the Ceph packages the files are skipped,
 * and fail under CI=true.
 */
export default defineConfig({
  test: {
    // The AWS SDK's notice that its 2027 releases need Node 22 (README: Quick start), once per process.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['test/rgw/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
