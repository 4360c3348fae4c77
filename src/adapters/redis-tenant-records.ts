/** Part of the sync state (adapters/redis-state.ts): the per-tenant records kept in plain hashes. */
import type { ReportSummary, SyncStateStore, TenantInfo } from '../ports/sync-state.js';
import { METADATA_SOURCES, type MetadataSource, type ParkedRecord } from '../types.js';
import type { RedisClient } from './redis-client.js';
import { stateKeys } from './redis-keys.js';

type TenantRecords = Pick<
  SyncStateStore,
  | 'park'
  | 'unpark'
  | 'parked'
  | 'info'
  | 'setHealth'
  | 'recordPoll'
  | 'recordError'
  | 'recordReport'
  | 'reports'
  | 'parkedCount'
  | 'getParked'
>;

/** A tenant's parked files, health and poll figures (the info hash), and manifest reports: plain hashes. */
export function tenantRecords(redis: RedisClient, prefix: string): TenantRecords {
  const { k } = stateKeys(prefix);
  return {
    async park(org, rec) {
      await redis.hset(k(org, 'parked'), rec.path, JSON.stringify(rec));
    },
    async unpark(org, path) {
      await redis.hdel(k(org, 'parked'), path);
    },
    async parked(org) {
      const all = await redis.hgetall(k(org, 'parked'));
      return Object.values(all)
        .map((v) => parse<ParkedRecord>(v))
        .filter((r): r is ParkedRecord => r !== undefined);
    },
    async info(org) {
      const h = await redis.hgetall(k(org, 'info'));
      const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
      return {
        health: (h.health as TenantInfo['health']) ?? 'unknown',
        reason: h.reason || undefined,
        since: num(h.since),
        lastPollAt: num(h.lastPollAt),
        lastPollMs: num(h.lastPollMs),
        lastPollFiles: num(h.lastPollFiles),
        files: Number(h.files ?? 0),
        bytes: Number(h.bytes ?? 0),
        lastError: h.lastError || undefined,
        lastErrorAt: num(h.lastErrorAt),
        pollFailures: Number(h.pollFailures ?? 0),
        lastFailureAt: num(h.lastFailureAt),
        bySource: Object.fromEntries(
          METADATA_SOURCES.map((s) => [s, Math.max(0, Number(h[`meta:${s}`] ?? 0))]),
        ) as Record<MetadataSource, number>,
      };
    },
    async setHealth(org, health, reason, opts = {}) {
      const key = k(org, 'info');
      const prev = ((await redis.hget(key, 'health')) as TenantInfo['health'] | null) ?? 'unknown';
      const multi = redis.multi().hset(key, 'health', health, 'reason', reason ?? '');
      if (prev !== health) multi.hset(key, 'since', Date.now());
      if (health === 'ok') multi.hset(key, 'pollFailures', 0);
      else if (opts.poll) multi.hincrby(key, 'pollFailures', 1).hset(key, 'lastFailureAt', Date.now());
      await multi.exec();
      return prev;
    },
    async recordPoll(org, p) {
      await redis.hset(k(org, 'info'), 'lastPollAt', p.at, 'lastPollMs', p.ms, 'lastPollFiles', p.files);
    },
    async recordError(org, message) {
      await redis.hset(k(org, 'info'), 'lastError', message, 'lastErrorAt', Date.now());
    },
    async recordReport(org, summary) {
      await redis.hset(k(org, 'reports'), summary.path, JSON.stringify(summary));
    },
    async reports(org) {
      return Object.values(await redis.hgetall(k(org, 'reports')))
        .map((v) => parse<ReportSummary>(v))
        .filter((r): r is ReportSummary => r !== undefined);
    },
    parkedCount: (org) => redis.hlen(k(org, 'parked')),
    async getParked(org, path) {
      return parse<ParkedRecord>(await redis.hget(k(org, 'parked'), path));
    },
  };
}

export function parse<T>(v: string | null | undefined): T | undefined {
  if (!v) return undefined;
  try {
    return JSON.parse(v) as T;
  } catch {
    return undefined;
  }
}
