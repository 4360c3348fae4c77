import { configDefaults, defineConfig } from 'vitest/config';

/** The main suite (`npm test`). Slow suites have their own configs and npm scripts. */
export const SLOW_SUITES = ['test/faults/**', 'test/interop/**', 'test/rgw/**', 'test/scale/**'];

export default defineConfig({
  test: {
    // The AWS SDK's notice that its 2027 releases need Node 22 (README: Quick start), once per process.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, ...SLOW_SUITES],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
