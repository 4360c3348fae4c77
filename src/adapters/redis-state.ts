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

import type { IndexedRow, SeenRecord, SyncStateStore, Version } from '../ports/sync-state.js';
import type { SyncRecord } from '../types.js';
import type { RedisClient } from './redis-client.js';
import { packRow, packSynced, unpackRow, unpackSynced, versionPart } from './redis-compact.js';
import { stateKeys } from './redis-keys.js';
import { makePollNotes } from './redis-poll-notes.js';
import { MR, run, SV } from './redis-state-scripts.js';
import { parse, tenantRecords } from './redis-tenant-records.js';

const CHUNK = 1000;

/**
 * One call-record version in the pending set. Settled marks stay (score 0) until the version leaves
 * the listing, so a poll racing the indexer cannot arm a settled version again (ZADD NX).
 */
const member = (v: Version) => `${v.path}\n${v.size}\n${v.mtime}`;

/** Buckets a table has, from its level and split pointer. */
const bucketCount = (l: string | null | undefined, s: string | null | undefined) =>
  2 ** Number(l ?? 0) + Number(s ?? 0);

export function makeRedisState(redis: RedisClient, prefix: string): SyncStateStore {
  const { k, lh, base, mf } = stateKeys(prefix);
  const notes = makePollNotes(redis, prefix);

  const { scanTable, findRow, indexRows } = tableOps(redis, prefix);

  return {
    ...tenantRecords(redis, prefix),
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
    async markSynced(org, path, rec, source, opts = {}) {
      // One script, not a MULTI of five commands: the same atomicity for a third of the client's work
      // (it runs once per file); the after-upload lookup of a manifest row rides along.
      const refs = opts.manifestRefs ?? [];
      const res = (await run(
        redis,
        'MARK_SYNCED',
        lh(org),
        base(org, MR),
        mf(org),
        base(org, SV),
        k(org, 'seen'),
        k(org, 'parked'),
        k(org, 'info'),
        path,
        packSynced(path, rec, org),
        versionPart(rec.size, rec.mtime),
        rec.size,
        source ?? '',
        ...refs,
      )) as (string | number | null)[];
      if (!refs.length) return {};
      const i = Number(res[1] ?? 0);
      const row = i
        ? unpackRow(refs[i - 1]!, typeof res[2] === 'string' ? res[2] : null, String(res[3] ?? ''))
        : undefined;
      return { manifestRow: row ?? null };
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
    async indexManifest(org, rows) {
      await indexRows(org, rows, false);
    },
    findManifestRow: (org, refs) => findRow(org, refs),
    recordPollNotes: (org, n) => notes.record(org, n),
    pollNotes: (org) => notes.read(org),
    ...layoutOps(redis, prefix, indexRows),
  };
}

/** Reading and writing the bucketed tables: a whole table, a manifest row, rows indexed. */
function tableOps(redis: RedisClient, prefix: string) {
  const { k, lh, base, mf } = stateKeys(prefix);

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

  return { scanTable, findRow, indexRows };
}

/** Dropping a tenant's state, and moving the layout before (one hash of JSON per table) into the buckets. */
function layoutOps(
  redis: RedisClient,
  prefix: string,
  indexRows: ReturnType<typeof tableOps>['indexRows'],
): Pick<SyncStateStore, 'clear' | 'migrate'> {
  const { k, lh, base } = stateKeys(prefix);
  return {
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
