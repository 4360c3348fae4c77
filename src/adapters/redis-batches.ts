/**
 * Zip batches in Redis, under the tenant's `{org}` hash tag like the rest of its state:
 *
 *   <prefix>:{<org>}:batches          hash  batch id → BatchRecord JSON
 *   <prefix>:{<org>}:batch:<id>       hash  entry index → EntryRecord JSON
 *   <prefix>:{<org>}:batch-content    hash  size:crc32 → ContentRecord JSON
 *   <prefix>:batch-orgs               set   tenants that have batches (for `batch status` of all)
 */
import type { BatchRecord, BatchStore, ContentRecord, EntryRecord } from '../ports/batches.js';
import type { RedisClient } from './redis-client.js';
import { stateKey } from './redis-keys.js';

/** The tenant of a batch id (`b-<org>-<hash>`, see `queue/batch-jobs.ts`). */
function orgOfBatch(id: string): string | undefined {
  return /^b-(.+)-[0-9a-f]{16}$/.exec(id)?.[1];
}

export function makeRedisBatchStore(redis: RedisClient, prefix: string): BatchStore {
  const orgs = `${prefix.replace(/[{}]/g, '')}:batch-orgs`;
  const batches = (org: string) => stateKey(prefix, org, 'batches');
  const entriesKey = (org: string, id: string) => stateKey(prefix, org, `batch:${id}`);
  const content = (org: string) => stateKey(prefix, org, 'batch-content');
  const orgOf = (id: string) => {
    const org = orgOfBatch(id);
    if (!org) throw new Error(`not a batch id: ${JSON.stringify(id)}`);
    return org;
  };
  const parse = <T>(v: string | null | undefined): T | undefined => (v ? (JSON.parse(v) as T) : undefined);

  return {
    async save(rec) {
      await redis.hset(batches(rec.org), rec.id, JSON.stringify(rec));
      await redis.sadd(orgs, rec.org);
    },
    async get(id) {
      const org = orgOfBatch(id);
      return org ? parse<BatchRecord>(await redis.hget(batches(org), id)) : undefined;
    },
    async list(org) {
      const which = org ? [org] : await redis.smembers(orgs);
      const out: BatchRecord[] = [];
      for (const o of which) {
        for (const v of Object.values(await redis.hgetall(batches(o))))
          out.push(JSON.parse(v) as BatchRecord);
      }
      return out.sort((a, b) => b.createdAt - a.createdAt);
    },
    async setEntry(id, entry) {
      await redis.hset(entriesKey(orgOf(id), id), String(entry.index), JSON.stringify(entry));
    },
    async entries(id) {
      const all = await redis.hgetall(entriesKey(orgOf(id), id));
      return Object.values(all)
        .map((v) => JSON.parse(v) as EntryRecord)
        .sort((a, b) => a.index - b.index);
    },
    async findContent(org, fingerprint) {
      return parse<ContentRecord>(await redis.hget(content(org), fingerprint));
    },
    async recordContent(org, fingerprint, rec) {
      await redis.hset(content(org), fingerprint, JSON.stringify(rec));
    },
  };
}
