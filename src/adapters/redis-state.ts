/**
 * Sync state in Redis. Every key of a tenant carries the hash tag `{org}` so a Redis Cluster keeps a
 * tenant's keys in one slot (multi-key transactions stay legal) and spreads tenants over its masters.
 * The prefix's own braces are dropped here (`{ftpsync}` → `ftpsync:{acme}:…`): the prefix's hash tag
 * is for BullMQ's keys and would otherwise put every tenant's state into that one slot.
 *
 *   <prefix>:{<org>}:synced   hash  path → SyncRecord JSON   (which version of each path is in S3)
 *   <prefix>:{<org>}:seen     hash  path → SeenRecord JSON   (versions seen once, waiting to be stable)
 *   <prefix>:{<org>}:parked   hash  path → ParkedRecord JSON
 *   <prefix>:{<org>}:info     hash  health, reason, lastPoll*, files, bytes, lastError
 *   <prefix>:{<org>}:manifest hash  recording reference → ManifestRow JSON (call metadata)
 *   <prefix>:{<org>}:reports  hash  manifest path → ReportSummary JSON
 *   <prefix>:{<org>}:manifests-pending  zset  call-record version (path, size, mtime), scored by when a
 *                  poll first listed it unindexed; 0 once settled (recordings wait while one is pending)
 */
import type {
  IndexedRow,
  ReportSummary,
  SeenRecord,
  SyncStateStore,
  TenantInfo,
  Version,
} from '../ports/sync-state.js';
import { METADATA_SOURCES, type MetadataSource, type ParkedRecord, type SyncRecord } from '../types.js';
import { luaScript, type RedisClient } from './redis-client.js';
import { stateKey } from './redis-keys.js';
import { makePollNotes } from './redis-poll-notes.js';

const CHUNK = 1000;

/**
 * A sync job's first look. KEYS: synced, info, manifest, manifests-pending. ARGV: path, the job's
 * own pending-manifest member ('' when none), the oldest first-listed time of a pending call record
 * that still holds recordings (≥ 1: settled marks score 0), manifest refs… Returns the sync record,
 * health, reason, the number of other call records pending since then, 1 when the job's own version
 * is a pending (unsettled) call record, then the manifest row of each ref (false where there is none).
 */
const JOB_CHECK = luaScript(`
local out = { redis.call('HGET', KEYS[1], ARGV[1]) }
local h = redis.call('HMGET', KEYS[2], 'health', 'reason')
out[2] = h[1]
out[3] = h[2]
local own = ARGV[2] ~= '' and tonumber(redis.call('ZSCORE', KEYS[4], ARGV[2]) or '0') or 0
local pending = redis.call('ZCOUNT', KEYS[4], ARGV[3], '+inf')
if own >= tonumber(ARGV[3]) then pending = pending - 1 end
out[4] = pending
out[5] = own > 0 and 1 or 0
for i = 4, #ARGV do out[i + 2] = redis.call('HGET', KEYS[3], ARGV[i]) end
return out`);

/**
 * KEYS: synced, seen, parked, info (one tenant's, one slot). ARGV: path, SyncRecord JSON, size,
 * mtime. The same version marked twice (a job run again after its worker lost its lock, or a HEAD
 * that found it already there) is counted once.
 */
const MARK_SYNCED = luaScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if old then
  local ok, rec = pcall(cjson.decode, old)
  if ok and tostring(rec.size) == ARGV[3] and rec.mtime == ARGV[4] then return 0 end
end
redis.call('HINCRBY', KEYS[4], 'files', 1)
redis.call('HINCRBY', KEYS[4], 'bytes', ARGV[3])
if ARGV[5] then redis.call('HINCRBY', KEYS[4], 'meta:' .. ARGV[5], 1) end
return 1`);

/**
 * One call-record version in the pending set. Settled marks stay (score 0) until the version leaves
 * the listing, so a poll racing the indexer cannot arm a settled version again (ZADD NX).
 */
const member = (v: Version) => `${v.path}\n${v.size}\n${v.mtime}`;

function parse<T>(v: string | null | undefined): T | undefined {
  if (!v) return undefined;
  try {
    return JSON.parse(v) as T;
  } catch {
    return undefined;
  }
}

export function makeRedisState(redis: RedisClient, prefix: string): SyncStateStore {
  const k = (org: string, name: string) => stateKey(prefix, org, name);
  const notes = makePollNotes(redis, prefix);

  return {
    async lookup(org, paths) {
      const pipe = redis.pipeline();
      for (let i = 0; i < paths.length; i += CHUNK)
        pipe.hmget(k(org, 'synced'), ...paths.slice(i, i + CHUNK));
      for (let i = 0; i < paths.length; i += CHUNK) pipe.hmget(k(org, 'seen'), ...paths.slice(i, i + CHUNK));
      const res = paths.length ? ((await pipe.exec()) ?? []) : [];
      const chunks = Math.ceil(paths.length / CHUNK);
      const flat = (from: number, to: number) =>
        res.slice(from, to).flatMap(([err, v]) => {
          if (err) throw err;
          return v as (string | null)[];
        });
      return {
        synced: flat(0, chunks).map((v) => parse<SyncRecord>(v)),
        seen: flat(chunks, 2 * chunks).map((v) => parse<SeenRecord>(v)),
      };
    },
    async replaceSeen(org, seen) {
      const multi = redis.multi().del(k(org, 'seen'));
      const entries = [...seen].map(([p, r]) => [p, JSON.stringify(r)] as const);
      for (let i = 0; i < entries.length; i += CHUNK)
        multi.hset(k(org, 'seen'), ...entries.slice(i, i + CHUNK).flat());
      await multi.exec();
    },
    async getSynced(org, path) {
      return parse<SyncRecord>(await redis.hget(k(org, 'synced'), path));
    },
    async jobCheck(org, path, { manifestRefs: refs = [], pendingSince = 1, version } = {}) {
      // One script over the tenant's keys (one slot, on a cluster too): a single command per job.
      const res = (await JOB_CHECK(
        redis,
        [k(org, 'synced'), k(org, 'info'), k(org, 'manifest'), k(org, 'manifests-pending')],
        [path, version ? member(version) : '', pendingSince, ...refs],
      )) as (string | number | null | false)[];
      const str = (v: string | number | null | false | undefined) => (typeof v === 'string' ? v : null);
      const synced = parse<SyncRecord>(str(res[0]));
      const health = str(res[1]);
      let manifestRow: IndexedRow | null | undefined;
      if (refs.length) {
        manifestRow = null;
        for (const v of res.slice(5)) {
          const row = parse<IndexedRow>(str(v));
          if (row) {
            manifestRow = row;
            break;
          }
        }
      }
      return {
        ...(synced && { synced }),
        ...(health === 'unhealthy' && { unhealthy: str(res[2]) || 'unhealthy' }),
        ...(manifestRow !== undefined && { manifestRow }),
        pendingManifests: Number(res[3] ?? 0),
        selfPending: Number(res[4] ?? 0) === 1,
      };
    },
    async markSynced(org, path, rec, source) {
      // One script, not a MULTI of five commands: the same atomicity for a third of the client's work
      // (it runs once per file).
      await MARK_SYNCED(
        redis,
        [k(org, 'synced'), k(org, 'seen'), k(org, 'parked'), k(org, 'info')],
        [path, JSON.stringify(rec), rec.size, rec.mtime, ...(source ? [source] : [])],
      );
    },
    async recountSource(org, from, to) {
      if (from === to) return;
      const multi = redis.multi().hincrby(k(org, 'info'), `meta:${to}`, 1);
      if (from) multi.hincrby(k(org, 'info'), `meta:${from}`, -1);
      await multi.exec();
    },
    async notePendingManifests(org, pending, listed, now) {
      const key = k(org, 'manifests-pending');
      const known = await redis.zrange(key, '0', '-1');
      const listedNow = new Set(listed.map(member));
      const gone = known.filter((m) => !listedNow.has(m));
      if (!pending.length && !gone.length) return;
      const multi = redis.multi();
      // NX: a version keeps the time it was first listed (the hold on recordings is bounded) and a
      // settled one stays settled.
      for (let i = 0; i < pending.length; i += CHUNK) {
        multi.zadd(key, 'NX', ...pending.slice(i, i + CHUNK).flatMap((v) => [String(now), member(v)]));
      }
      for (let i = 0; i < gone.length; i += CHUNK) multi.zrem(key, ...gone.slice(i, i + CHUNK));
      await multi.exec();
    },
    async manifestSettled(org, version) {
      await redis.zadd(k(org, 'manifests-pending'), 'XX', '0', member(version));
    },
    async allSynced(org) {
      const out = new Map<string, SyncRecord>();
      let cursor = '0';
      do {
        const [next, flat] = await redis.hscan(k(org, 'synced'), cursor, 'COUNT', 1000);
        for (let i = 0; i < flat.length; i += 2) {
          const rec = parse<SyncRecord>(flat[i + 1]);
          if (rec) out.set(flat[i]!, rec);
        }
        cursor = next;
      } while (cursor !== '0');
      return out;
    },
    async forgetSynced(org, paths) {
      if (paths.length) await redis.hdel(k(org, 'synced'), ...paths);
    },
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
    async indexManifest(org, rows) {
      const entries = [...rows].map(([ref, row]) => [ref, JSON.stringify(row)] as const);
      const pipe = redis.pipeline();
      for (let i = 0; i < entries.length; i += CHUNK)
        pipe.hset(k(org, 'manifest'), ...entries.slice(i, i + CHUNK).flat());
      if (entries.length) await pipe.exec();
    },
    async findManifestRow(org, refs) {
      if (!refs.length) return undefined;
      const found = await redis.hmget(k(org, 'manifest'), ...refs);
      for (const v of found) {
        const row = parse<IndexedRow>(v);
        if (row) return row;
      }
      return undefined;
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
    recordPollNotes: (org, n) => notes.record(org, n),
    pollNotes: (org) => notes.read(org),
    async clear(org) {
      await redis.del(
        ...['synced', 'seen', 'parked', 'info', 'manifest', 'reports', 'manifests-pending'].map((n) =>
          k(org, n),
        ),
      );
    },
  };
}
