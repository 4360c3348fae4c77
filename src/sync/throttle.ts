/**
 * A tenant's `maxBandwidth` applied to one transfer: before the transfer takes a chunk from the
 * source, it spends that many bytes of the tenant's budget (ports/bandwidth.ts), waiting when the
 * budget is spent. Holding the chunk back holds back the source read (stream back-pressure), so the
 * server's link carries no more than the cap. Budget is reserved in grants of ~50 ms of the rate, one
 * round trip each.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../log.js';
import type { BandwidthLimiter } from '../ports/bandwidth.js';

/** Spends `bytes` of the budget; resolves when they may be read. */
export type Throttle = (bytes: number) => Promise<void>;

export function makeThrottle(opts: {
  limiter: BandwidthLimiter;
  org: string;
  bytesPerSecond: number;
  signal?: AbortSignal;
  log?: Logger;
}): Throttle {
  const { limiter, org, bytesPerSecond: rate, signal } = opts;
  const grant = Math.min(1024 * 1024, Math.max(16 * 1024, Math.round(rate / 20)));
  let allowance = 0;
  let warned = false;
  return async (bytes) => {
    if (allowance >= bytes) {
      allowance -= bytes;
      return;
    }
    const want = Math.max(grant, bytes - allowance);
    let wait: number;
    try {
      wait = await limiter.reserve(org, rate, want);
    } catch (err) {
      // Redis out of reach: keep to the rate on this transfer alone rather than fail the transfer.
      if (!warned)
        opts.log?.warn({ err, org }, 'bandwidth budget unavailable: limiting this transfer locally');
      warned = true;
      wait = Math.round((want * 1000) / rate);
    }
    allowance += want - bytes;
    if (wait > 0) await delay(wait, undefined, { signal });
  };
}
