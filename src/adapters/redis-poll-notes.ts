/**
 * What the last completed poll of a tenant found wrong without failing: configured directories that
 * do not exist on the server (the others were synced: the tenant is *degraded*) and names the server
 * listed that can never be synced (a newline or another control character in the name, a `/` in a
 * name, a listing line no format fits). Kept beside the tenant's other state, in its `info` hash
 * (fields `missingDirs`, `unsyncable`, `unsyncableSample`), so clearing a tenant's state clears them.
 */
import type { PollNotes } from '../ports/sync-state.js';
import type { RedisClient } from './redis-client.js';
import { stateKey } from './redis-keys.js';

function parseList(v: string | null | undefined): string[] {
  if (!v) return [];
  try {
    const a = JSON.parse(v);
    return Array.isArray(a) ? a.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

export function makePollNotes(redis: RedisClient, prefix: string) {
  const key = (org: string) => stateKey(prefix, org, 'info');
  return {
    async record(org: string, notes: PollNotes): Promise<void> {
      await redis.hset(
        key(org),
        'missingDirs',
        JSON.stringify(notes.missingDirs),
        'unsyncable',
        notes.unsyncable.count,
        'unsyncableSample',
        JSON.stringify(notes.unsyncable.sample),
      );
    },
    async read(org: string): Promise<PollNotes> {
      const [dirs, count, sample] = await redis.hmget(
        key(org),
        'missingDirs',
        'unsyncable',
        'unsyncableSample',
      );
      return {
        missingDirs: parseList(dirs),
        unsyncable: { count: Number(count ?? 0) || 0, sample: parseList(sample) },
      };
    },
  };
}
