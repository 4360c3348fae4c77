/**
 * Stops what the sandbox started, newest first, each step even when an earlier one failed
 * (BullMQ's `close()` habit). `run()` is idempotent: a second call returns the first one's promise.
 */
export interface Teardown {
  /** Registers a step; steps run in reverse order of registration. */
  add(name: string, step: () => Promise<void> | void): void;
  /** Runs every step once; resolves with the failures as `name: message` (never rejects). */
  run(): Promise<string[]>;
}

export function makeTeardown(): Teardown {
  const steps: { name: string; step: () => Promise<void> | void }[] = [];
  let running: Promise<string[]> | undefined;
  return {
    add(name, step) {
      steps.push({ name, step });
    },
    run() {
      running ??= (async () => {
        const failures: string[] = [];
        for (const { name, step } of steps.reverse()) {
          try {
            await step();
          } catch (err) {
            failures.push(`${name}: ${(err as Error).message}`);
          }
        }
        return failures;
      })();
      return running;
    },
  };
}
