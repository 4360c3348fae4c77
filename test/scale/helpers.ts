/**
 * Small helpers of the scale-out suite and bench; the daemon processes themselves are started with
 * test/support/process.ts.
 */
import { execFile } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../support/process.js';

const run = promisify(execFile);

/** Polls `fn` until it returns a truthy value (returned), or throws after `timeoutMs` saying `what`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  everyMs = 200,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/** Runs `ftp-sync <args>` (the real CLI, a child process) with `input` on stdin; rejects on a non-zero exit. */
export function runCli(args: string[], opts: { env?: Record<string, string>; input?: string } = {}) {
  const child = run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...opts.env },
  });
  child.child.stdin?.end(opts.input ?? '');
  return child;
}
