import { defineConfig } from 'vitest/config';

/**
 * `npm run test:interop`: the interop matrix against Debian's vsftpd, pure-ftpd and proftpd, started
 * on loopback by the tests (docs/interop.md). Kept out of `npm test` by vitest.config.ts.
 */
export default defineConfig({
  test: {
    // The AWS SDK's notice that its 2027 releases need Node 22 (README: Quick start), once per process.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['test/interop/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    globalSetup: ['test/support/global-setup.ts', 'test/interop/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
