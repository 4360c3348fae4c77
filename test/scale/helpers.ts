/**
 * Small helpers of the scale-out suite and bench; the daemon processes themselves are started with
 * test/support/process.ts.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../support/process.js';

const run = promisify(execFile);

export { waitFor } from '../support/wait.js';

/** Runs `ftp-sync <args>` (the real CLI, a child process) with `input` on stdin; rejects on a non-zero exit. */
export function runCli(args: string[], opts: { env?: Record<string, string>; input?: string } = {}) {
  const child = run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...opts.env },
  });
  child.child.stdin?.end(opts.input ?? '');
  return child;
}
