/**
 * Crash safety: a worker killed in the middle of a multipart upload leaves the upload open in S3
 * (its parts are billed and invisible). The worker role aborts our own stale ones — under each
 * tenant's key prefix, older than `s3.staleUploadAge` — once an hour, and first soon after start.
 * Each pass also aborts, by id, the uploads recorded when they were created whose process is gone
 * (or older than the age): that covers stores that cannot list uploads. An S3 lifecycle rule
 * (AbortIncompleteMultipartUpload) is the recommended second net.
 */
import { toError } from '../errors.js';
import type { Logger } from '../log.js';

export interface StaleUploadCleanupDeps {
  /** Aborts uploads under `prefix` older than `olderThanMs`; `'unsupported'` when the store cannot list them. */
  abortStaleUploads(prefix: string, olderThanMs: number): Promise<number | 'unsupported'>;
  /**
   * Aborts the recorded uploads whose owner is gone or older than `olderThanMs`; resolves with how
   * many. Optional: without it only listing is used.
   */
  abortRecorded?(olderThanMs: number): Promise<number>;
  /** Every tenant's key prefix (`acme/` for the template `{org}/{path}`). */
  prefixes(): Promise<string[]>;
  olderThanMs: number;
  /** @defaultValue one hour */
  everyMs?: number;
  /** Delay of the first pass after start. @defaultValue 5 s */
  firstAfterMs?: number;
  log: Logger;
}

export interface StaleUploadCleanup {
  /** One pass over every prefix; resolves with how many uploads were aborted. Never throws. */
  runOnce(): Promise<number>;
  close(): void;
}

export function startStaleUploadCleanup(deps: StaleUploadCleanupDeps): StaleUploadCleanup {
  const log = deps.log.child({ task: 'stale-uploads' });
  let unsupported = false;
  let running: Promise<number> | undefined;

  async function pass(): Promise<number> {
    let total = 0;
    if (deps.abortRecorded) {
      try {
        const n = await deps.abortRecorded(deps.olderThanMs);
        if (n > 0) log.info({ aborted: n }, 'aborted multipart uploads left open by a process that is gone');
        total += n;
      } catch (err) {
        log.warn({ err: toError(err).message }, 'recorded upload cleanup failed; next pass in an hour');
      }
    }
    if (unsupported) return total;
    for (const prefix of await deps.prefixes()) {
      try {
        const n = await deps.abortStaleUploads(prefix, deps.olderThanMs);
        if (n === 'unsupported') {
          // Said once per process: the store will not start listing uploads later.
          unsupported = true;
          log.warn(
            'the object store does not list multipart uploads (501): only the uploads recorded in Redis are cleaned up; rely on a lifecycle rule too',
          );
          return total;
        }
        if (n > 0) log.info({ prefix, aborted: n }, 'aborted stale multipart uploads');
        total += n;
      } catch (err) {
        log.warn({ prefix, err: toError(err).message }, 'stale upload cleanup failed; next pass in an hour');
      }
    }
    return total;
  }

  const runOnce = () => {
    running ??= pass()
      .then((n) => {
        // Once an hour: what the pass did, also when nothing (a test or an operator can tell it ran).
        log.info({ aborted: n }, 'stale upload cleanup pass done');
        return n;
      })
      .catch((err) => {
        log.warn({ err: toError(err).message }, 'stale upload cleanup failed');
        return 0;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  // The first pass soon after start (a replica restarted after a crash), then every hour.
  const first = setTimeout(() => void runOnce(), deps.firstAfterMs ?? 5_000);
  const timer = setInterval(() => void runOnce(), deps.everyMs ?? 3_600_000);
  first.unref();
  timer.unref();
  return {
    runOnce,
    close() {
      clearTimeout(first);
      clearInterval(timer);
    },
  };
}
