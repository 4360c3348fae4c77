import type { Reporter, TestModule } from 'vitest/node';

/**
 * Ends a run with one plain line, `N passed, N failed, N skipped`, that CI systems read, and names
 * every skipped test. Under CI=true a skipped test fails the run (exit code 1): a suite that cannot
 * run on the CI machine is a missing package there, not something to pass over (test/support/needs.ts).
 * Every vitest config lists this reporter.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const n = { passed: 0, failed: 0, skipped: 0 };
    const skipped: string[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') n.passed++;
        else if (state === 'failed') n.failed++;
        else {
          n.skipped++;
          skipped.push(`${m.moduleId.slice(m.project.config.root.length + 1)} > ${t.fullName}`);
        }
      }
    }
    if (skipped.length) {
      process.stdout.write(`\nskipped:\n${skipped.map((s) => `  - ${s}`).join('\n')}\n`);
    }
    process.stdout.write(`\n${n.passed} passed, ${n.failed} failed, ${n.skipped} skipped\n`);
    if (skipped.length && isCi()) {
      process.stdout.write(`CI=true: ${n.skipped} skipped test(s) fail the run (see the list above)\n`);
      process.exitCode = 1;
    }
  }
}

export const isCi = () => /^(true|1)$/i.test(process.env.CI ?? '');
