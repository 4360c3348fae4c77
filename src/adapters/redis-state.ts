/**
 * Sync state in Redis. Every key of a tenant carries the hash tag `{org}` so a Redis Cluster keeps a
 * tenant's keys in one slot (multi-key transactions stay legal) and spreads tenants over its masters.
 * The prefix's own braces are dropped here (`{ftpsync}` → `ftpsync:{acme}:…`): the prefix's hash tag
 * is for BullMQ's keys and would otherwise put every tenant's state into that one slot.
 *
 *   <prefix>:{<org>}:sv:<i>   hashes path → packed SyncRecord (which version of each path is in S3),
 *                  bucketed by a digest of the path (adapters/redis-compact.ts), `lh` their sizes
 *   <prefix>:{<org>}:seen     hash  path → SeenRecord JSON   (versions seen once, waiting to be stable)
 *   <prefix>:{<org>}:parked   hash  path → ParkedRecord JSON
 *   <prefix>:{<org>}:info     hash  health, reason, lastPoll*, files, bytes, lastError
 *   <prefix>:{<org>}:mr:<i>   hashes recording reference → packed manifest row (call metadata), bucketed
 *   <prefix>:{<org>}:manifests hash  p:<manifest path> → n, i:<n> → manifest path (rows name it by n)
 *   <prefix>:{<org>}:reports  hash  manifest path → ReportSummary JSON
 *   <prefix>:{<org>}:manifests-pending  zset  call-record version (path, size, mtime), scored by when a
 *                  poll first listed it unindexed; 0 once settled (recordings wait while one is pending)
 *
 * The layout before (`synced` and `manifest`: one hash of JSON per tenant) is moved into the buckets
 * by `migrate`, which the daemon runs for every tenant on start.
 */

import type { ChainableCommander } from 'ioredis';
import type {
  IndexedRow,
  ReportSummary,
  SeenRecord,
  SyncStateStore,
  TenantInfo,
  Version,
} from '../ports/sync-state.js';
import { METADATA_SOURCES, type MetadataSource, type ParkedRecord, type SyncRecord } from '../types.js';
import { type LuaScript, luaScript, type RedisClient } from './redis-client.js';
import { LH_LUA, packRow, packSynced, unpackRow, unpackSynced, versionPart } from './redis-compact.js';
import { stateKey } from './redis-keys.js';
import { makePollNotes } from './redis-poll-notes.js';

const CHUNK = 1000;

/** The bucketed tables' keys: the meta hash and each table's bucket-key prefix. */
const SV = 'sv';
const MR = 'mr';

/** Every synced record of many paths. KEYS: lh, sv base. ARGV: paths. */
const LOOKUP = `${LH_LUA}
local l, s = lh_params('sv')
local out = {}
for i = 1, #ARGV do out[i] = redis.call('HGET', lh_bucket(KEYS[2], lh_hash(ARGV[i]), l, s), ARGV[i]) end
return out`;

/** KEYS: lh, mr base, manifests. ARGV: refs. Returns the index of the first ref with a row, the row, its manifest. */
const FIND_ROW_LUA = `
local function find_row(first)
  for i = first, #ARGV do
    local v = lh_get(KEYS[2], 'mr', ARGV[i])
    if v then
      local id = string.match(v, '^([^\\031]*)')
      return { i - first + 1, v, redis.call('HGET', KEYS[3], 'i:' .. id) or '' }
    end
  end
  return {}
end
`;
const FIND_ROW = `${LH_LUA}${FIND_ROW_LUA}
return find_row(1)`;

/**
 * A sync job's first look. KEYS: lh, mr base, manifests, sv base, info, manifests-pending. ARGV:
 * path, the job's own pending-manifest member ('' when none), the oldest first-listed time of a
 * pending call record that still holds recordings (≥ 1: settled marks score 0), manifest refs…
 * Returns the packed sync record, health, reason, the number of other call records pending since
 * then, 1 when the job's own version is a pending (unsettled) call record, then (when refs were
 * given) the index of the first ref with a row, the row and its manifest.
 */
const JOB_CHECK = `${LH_LUA}${FIND_ROW_LUA}
local out = { lh_get(KEYS[4], 'sv', ARGV[1]) }
local h = redis.call('HMGET', KEYS[5], 'health', 'reason')
out[2] = h[1]
out[3] = h[2]
local own = ARGV[2] ~= '' and tonumber(redis.call('ZSCORE', KEYS[6], ARGV[2]) or '0') or 0
local pending = redis.call('ZCOUNT', KEYS[6], ARGV[3], '+inf')
if own >= tonumber(ARGV[3]) then pending = pending - 1 end
out[4] = pending
out[5] = own > 0 and 1 or 0
if #ARGV >= 4 then
  local r = find_row(4)
  out[6] = r[1] or 0
  out[7] = r[2] or ''
  out[8] = r[3] or ''
end
return out`;

/**
 * KEYS: lh, sv base, seen, parked, info (one tenant's, one slot). ARGV: path, packed record, its
 * version part, size, metadata source. The same version marked twice (a job run again after its
 * worker lost its lock, or a HEAD that found it already there) is counted once.
 */
const MARK_SYNCED = `${LH_LUA}
local old = lh_set(KEYS[2], 'sv', ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if old and string.sub(old, 1, #ARGV[3]) == ARGV[3] then return 0 end
redis.call('HINCRBY', KEYS[5], 'files', 1)
redis.call('HINCRBY', KEYS[5], 'bytes', ARGV[4])
if ARGV[5] then redis.call('HINCRBY', KEYS[5], 'meta:' .. ARGV[5], 1) end
return 1`;

/** KEYS: lh, sv base. ARGV: paths. */
const FORGET = `${LH_LUA}
for i = 1, #ARGV do lh_del(KEYS[2], 'sv', ARGV[i]) end
return 0`;

/**
 * KEYS: lh, sv base, the old layout's synced hash. ARGV: path, packed record, … Moves records of the
 * old layout in; a record already in the new layout (written since) wins.
 */
const MIGRATE_SYNCED = `${LH_LUA}
local moved = 0
for i = 1, #ARGV, 2 do
  if not lh_get(KEYS[2], 'sv', ARGV[i]) then
    lh_set(KEYS[2], 'sv', ARGV[i], ARGV[i + 1])
    moved = moved + 1
  end
  redis.call('HDEL', KEYS[3], ARGV[i])
end
return moved`;

/**
 * KEYS: lh, mr base, manifests, the old layout's manifest hash. ARGV: manifest path, '1' to migrate
 * (set only where no row is, and forget the old one), then ref, packed row, … A manifest path is
 * stored once, as a number (`manifests`: p:<path> → n, i:<n> → path).
 */
const INDEX_ROWS = `${LH_LUA}
local id = redis.call('HGET', KEYS[3], 'p:' .. ARGV[1])
if not id then
  id = redis.call('HINCRBY', KEYS[3], 'next', 1)
  redis.call('HSET', KEYS[3], 'p:' .. ARGV[1], id, 'i:' .. id, ARGV[1])
end
for i = 3, #ARGV, 2 do
  if ARGV[2] ~= '1' or not lh_get(KEYS[2], 'mr', ARGV[i]) then
    lh_set(KEYS[2], 'mr', ARGV[i], id .. '\\031' .. ARGV[i + 1])
  end
  if ARGV[2] == '1' then redis.call('HDEL', KEYS[4], ARGV[i]) end
end
return 0`;

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

const SCRIPTS = { LOOKUP, FIND_ROW, JOB_CHECK, MARK_SYNCED, FORGET, MIGRATE_SYNCED, INDEX_ROWS } as const;
const KEY_COUNTS: Record<keyof typeof SCRIPTS, number> = {
  LOOKUP: 2,
  FIND_ROW: 3,
  JOB_CHECK: 6,
  MARK_SYNCED: 5,
  FORGET: 2,
  MIGRATE_SYNCED: 3,
  INDEX_ROWS: 4,
};

/** The scripts run by EVALSHA (`luaScript`): a few KB of Lua with every call would cost more than the call. */
const LUA = Object.fromEntries(
  Object.entries(SCRIPTS).map(([name, lua]) => [name, luaScript(lua)]),
) as Record<keyof typeof SCRIPTS, LuaScript>;

type Commander = RedisClient | ChainableCommander;
function run(target: Commander, name: keyof typeof SCRIPTS, ...args: (string | number)[]): Promise<unknown> {
  const n = KEY_COUNTS[name];
  return LUA[name](target, args.slice(0, n).map(String), args.slice(n));
}

/** Buckets a table has, from its level and split pointer. */
const bucketCount = (l: string | null | undefined, s: string | null | undefined) =>
  2 ** Number(l ?? 0) + Number(s ?? 0);

export function makeRedisState(redis: RedisClient, prefix: string): SyncStateStore {
  const k = (org: string, name: string) => stateKey(prefix, org, name);
  const notes = makePollNotes(redis, prefix);
  const lh = (org: string) => k(org, 'lh');
  const base = (org: string, t: string) => `${k(org, t)}:`;
  const mf = (org: string) => k(org, 'manifests');

  /** Every bucket key of a table, read once more at the end so that a split meanwhile is not missed. */
  async function scanTable(org: string, t: string, each: (field: string, value: string) => void) {
    let done = 0;
    for (;;) {
      const [l, sp] = await redis.hmget(lh(org), `${t}:l`, `${t}:s`);
      const n = bucketCount(l, sp);
      if (done >= n) return;
      for (let i = done; i < n; i += 256) {
        const pipe = redis.pipeline();
        for (let b = i; b < Math.min(n, i + 256); b++) pipe.hgetall(`${base(org, t)}${b}`);
        for (const [err, h] of (await pipe.exec()) ?? []) {
          if (err) throw err;
          for (const [f, v] of Object.entries(h as Record<string, string>)) each(f, v);
        }
      }
      done = n;
    }
  }

  async function findRow(org: string, refs: string[]): Promise<IndexedRow | undefined> {
    if (!refs.length) return undefined;
    const [i, v, manifest] = (await run(redis, 'FIND_ROW', lh(org), base(org, MR), mf(org), ...refs)) as [
      number?,
      string?,
      string?,
    ];
    return i ? unpackRow(refs[i - 1]!, v, manifest ?? '') : undefined;
  }

  async function indexRows(org: string, rows: Iterable<[string, IndexedRow]>, migrating: boolean) {
    const byManifest = new Map<string, string[]>();
    for (const [ref, row] of rows) {
      const list = byManifest.get(row.manifest) ?? [];
      byManifest.set(row.manifest, list);
      list.push(ref, packRow(ref, row));
    }
    const pipe = redis.pipeline();
    for (const [manifest, flat] of byManifest) {
      for (let i = 0; i < flat.length; i += 2 * CHUNK) {
        run(
          pipe,
          'INDEX_ROWS',
          lh(org),
          base(org, MR),
          mf(org),
          k(org, 'manifest'),
          manifest,
          migrating ? '1' : '0',
          ...flat.slice(i, i + 2 * CHUNK),
        );
      }
    }
    if (byManifest.size) for (const [err] of (await pipe.exec()) ?? []) if (err) throw err;
  }

  return {
    async lookup(org, paths) {
      const pipe = redis.pipeline();
      for (let i = 0; i < paths.length; i += CHUNK)
        run(pipe, 'LOOKUP', lh(org), base(org, SV), ...paths.slice(i, i + CHUNK));
      for (let i = 0; i < paths.length; i += CHUNK) pipe.hmget(k(org, 'seen'), ...paths.slice(i, i + CHUNK));
      const res = paths.length ? ((await pipe.exec()) ?? []) : [];
      const chunks = Math.ceil(paths.length / CHUNK);
      const flat = (from: number, to: number) =>
        res.slice(from, to).flatMap(([err, v]) => {
          if (err) throw err;
          return v as (string | null)[];
        });
      return {
        synced: flat(0, chunks).map((v, i) => unpackSynced(paths[i]!, v, org)),
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
      const [v] = (await run(redis, 'LOOKUP', lh(org), base(org, SV), path)) as (string | null)[];
      return unpackSynced(path, v, org);
    },
    async jobCheck(org, path, { manifestRefs: refs = [], pendingSince = 1, version } = {}) {
      // One script over the tenant's keys (one slot, on a cluster too): a single command per job.
      const res = (await run(
        redis,
        'JOB_CHECK',
        lh(org),
        base(org, MR),
        mf(org),
        base(org, SV),
        k(org, 'info'),
        k(org, 'manifests-pending'),
        path,
        version ? member(version) : '',
        pendingSince,
        ...refs,
      )) as (string | number | null | false)[];
      const str = (v: string | number | null | false | undefined) => (typeof v === 'string' ? v : null);
      const synced = unpackSynced(path, str(res[0]), org);
      const health = str(res[1]);
      let manifestRow: IndexedRow | null | undefined;
      if (refs.length) {
        const i = Number(res[5] ?? 0);
        manifestRow = (i && unpackRow(refs[i - 1]!, str(res[6]), str(res[7]) ?? '')) || null;
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
      await run(
        redis,
        'MARK_SYNCED',
        lh(org),
        base(org, SV),
        k(org, 'seen'),
        k(org, 'parked'),
        k(org, 'info'),
        path,
        packSynced(path, rec, org),
        versionPart(rec.size, rec.mtime),
        rec.size,
        ...(source ? [source] : []),
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
      await scanTable(org, SV, (path, v) => {
        const rec = unpackSynced(path, v, org);
        if (rec) out.set(path, rec);
      });
      return out;
    },
    async forgetSynced(org, paths) {
      for (let i = 0; i < paths.length; i += CHUNK)
        await run(redis, 'FORGET', lh(org), base(org, SV), ...paths.slice(i, i + CHUNK));
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
      await indexRows(org, rows, false);
    },
    findManifestRow: (org, refs) => findRow(org, refs),
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
      const [svl, svs, mrl, mrs] = await redis.hmget(lh(org), 'sv:l', 'sv:s', 'mr:l', 'mr:s');
      const keys = [
        ...[
          'synced',
          'seen',
          'parked',
          'info',
          'manifest',
          'reports',
          'manifests-pending',
          'manifests',
          'lh',
        ].map((n) => k(org, n)),
      ];
      for (let i = 0; i < bucketCount(svl, svs); i++) keys.push(`${base(org, SV)}${i}`);
      for (let i = 0; i < bucketCount(mrl, mrs); i++) keys.push(`${base(org, MR)}${i}`);
      for (let i = 0; i < keys.length; i += CHUNK) await redis.del(...keys.slice(i, i + CHUNK));
    },
    async migrate(org) {
      // The old layout: one hash of JSON records per tenant. Moved in chunks; each chunk leaves the
      // old hash as it moves in, so a migration cut short goes on where it stopped.
      let moved = 0;
      const old = k(org, 'synced');
      for (;;) {
        const [, flat] = await redis.hscan(old, '0', 'COUNT', CHUNK);
        if (!flat.length) break;
        const args: string[] = [];
        const drop: string[] = [];
        for (let i = 0; i < flat.length; i += 2) {
          const rec = parse<SyncRecord>(flat[i + 1]);
          if (rec && typeof rec.size === 'number' && typeof rec.mtime === 'string')
            args.push(
              flat[i]!,
              packSynced(flat[i]!, { ...rec, key: rec.key ?? '', syncedAt: rec.syncedAt ?? 0 }, org),
            );
          else drop.push(flat[i]!); // unreadable: nothing to keep (a poll finds the object by HEAD)
        }
        if (args.length)
          moved += Number(await run(redis, 'MIGRATE_SYNCED', lh(org), base(org, SV), old, ...args));
        if (drop.length) await redis.hdel(old, ...drop);
      }
      const oldRows = k(org, 'manifest');
      for (;;) {
        const [, flat] = await redis.hscan(oldRows, '0', 'COUNT', CHUNK);
        if (!flat.length) break;
        const rows: [string, IndexedRow][] = [];
        const drop: string[] = [];
        for (let i = 0; i < flat.length; i += 2) {
          const row = parse<IndexedRow>(flat[i + 1]);
          if (row && typeof row.manifest === 'string') rows.push([flat[i]!, row]);
          else drop.push(flat[i]!);
        }
        await indexRows(org, rows, true);
        moved += rows.length;
        if (drop.length) await redis.hdel(oldRows, ...drop);
      }
      return moved;
    },
  };
}
