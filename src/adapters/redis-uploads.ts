/**
 * Open multipart uploads in Redis: one hash `<prefix>:uploads` (uploadId → JSON record), one
 * `<prefix>:uploads:bytes` (uploadId → bytes confirmed, HINCRBY: parts answer concurrently) and, per
 * process that has uploaded, a lease `<prefix>:uploads:owner:<owner>` renewed every third of its
 * lifetime. A lease that is gone means its process is dead (or cut off from Redis for longer than a
 * BullMQ job lock, so its jobs run elsewhere anyway).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { UploadRecord, UploadRecords } from '../ports/upload-records.js';
import type { RedisClient } from './redis-client.js';

export function makeRedisUploadRecords(
  redis: RedisClient,
  prefix: string,
  opts: { leaseMs: number; owner?: string },
): UploadRecords {
  const base = prefix.replace(/[{}]/g, '');
  const hash = `${base}:uploads`;
  const bytesHash = `${base}:uploads:bytes`;
  const lease = (owner: string) => `${base}:uploads:owner:${owner}`;
  const owner = opts.owner ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  let timer: NodeJS.Timeout | undefined;
  const renew = () => redis.set(lease(owner), String(Date.now()), 'PX', opts.leaseMs);
  /** The lease is taken on the first upload: a process that never uploads writes nothing. */
  const hold = async () => {
    if (timer) return;
    timer = setInterval(() => void renew().catch(() => {}), Math.max(50, Math.floor(opts.leaseMs / 3)));
    timer.unref();
    await renew();
  };
  return {
    owner,
    async add(rec) {
      await hold(); // before the record: a record's owner always had a lease
      const full: Omit<UploadRecord, 'bytes'> = { ...rec, owner };
      await redis.hset(hash, rec.uploadId, JSON.stringify(full));
    },
    async adopt(uploadId) {
      const raw = await redis.hget(hash, uploadId);
      if (!raw) return;
      await hold();
      await redis.hset(hash, uploadId, JSON.stringify({ ...(JSON.parse(raw) as UploadRecord), owner }));
    },
    async progress(uploadId, bytes) {
      await redis.hincrby(bytesHash, uploadId, bytes);
    },
    async remove(uploadId) {
      await redis.hdel(hash, uploadId);
      await redis.hdel(bytesHash, uploadId);
    },
    async list() {
      const all = await redis.hgetall(hash);
      const bytes = await redis.hgetall(bytesHash);
      const out: UploadRecord[] = [];
      for (const [uploadId, raw] of Object.entries(all)) {
        try {
          out.push({ ...(JSON.parse(raw) as UploadRecord), uploadId, bytes: Number(bytes[uploadId] ?? 0) });
        } catch {
          await redis.hdel(hash, uploadId); // unreadable: nothing could abort it anyway
        }
      }
      return out;
    },
    async alive(who) {
      if (who === owner) return true;
      return (await redis.exists(lease(who))) === 1;
    },
    async close() {
      if (!timer) return;
      clearInterval(timer);
      timer = undefined;
      await redis.del(lease(owner)).catch(() => {});
    },
  };
}
