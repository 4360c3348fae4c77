/**
 * `maxBandwidth` across replicas: one Redis key per tenant holds the time (Redis's clock, ms) at which
 * everything reserved so far has been read at the tenant's rate. A reservation of `bytes` starts at
 * that time (or now, when it lies in the past), moves it on by bytes / rate, and tells the caller how
 * long to wait for its start. One round trip per chunk; the key expires once the tenant is idle.
 * A reservation may start up to BURST_MS in the past: a reader that comes back a little late (timer
 * lag, the round trip) is not charged for the gap, so one transfer alone still reaches the rate; the
 * most a tenant ever reads over any span T is rate × (T + BURST_MS) plus one grant per transfer.
 */

import type { BandwidthLimiter } from '../ports/bandwidth.js';
import type { RedisClient } from './redis-client.js';
import { stateKey } from './redis-keys.js';

const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1])
local bytes = tonumber(ARGV[2])
local at = tonumber(redis.call('GET', KEYS[1]) or '0')
local earliest = now - tonumber(ARGV[3])
if at < earliest then at = earliest end
local after = at + bytes * 1000 / rate
redis.call('SET', KEYS[1], string.format('%.3f', after), 'PX', math.max(1, math.ceil(after - now)) + 1000)
if at < now then return 0 end
return math.floor(at - now)
`;

const BURST_MS = 100;

export function makeRedisBandwidth(redis: RedisClient, prefix: string): BandwidthLimiter {
  return {
    async reserve(org, bytesPerSecond, bytes) {
      const wait = await redis.eval(
        RESERVE,
        1,
        stateKey(prefix, org, 'bandwidth'),
        bytesPerSecond,
        bytes,
        BURST_MS,
      );
      return Number(wait);
    },
  };
}
