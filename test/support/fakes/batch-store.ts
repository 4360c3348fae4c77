/** An in-memory `BatchStore` (same behaviour as the Redis adapter, for fast tests). */
import type { BatchRecord, BatchStore, ContentRecord, EntryRecord } from '../../../src/ports/batches.js';

export function makeMemoryBatchStore(): BatchStore {
  const batches = new Map<string, BatchRecord>();
  const entries = new Map<string, Map<number, EntryRecord>>();
  const content = new Map<string, ContentRecord>();
  const copy = <T>(v: T): T => structuredClone(v);
  return {
    async save(rec) {
      batches.set(rec.id, copy(rec));
    },
    async get(id) {
      const b = batches.get(id);
      return b && copy(b);
    },
    async list(org) {
      return [...batches.values()]
        .filter((b) => !org || b.org === org)
        .map(copy)
        .sort((a, b) => b.createdAt - a.createdAt);
    },
    async setEntry(id, entry) {
      if (!entries.has(id)) entries.set(id, new Map());
      entries.get(id)?.set(entry.index, copy(entry));
    },
    async entries(id) {
      return [...(entries.get(id)?.values() ?? [])].map(copy).sort((a, b) => a.index - b.index);
    },
    async findContent(org, fp) {
      const c = content.get(`${org}\0${fp}`);
      return c && copy(c);
    },
    async recordContent(org, fp, rec) {
      content.set(`${org}\0${fp}`, copy(rec));
    },
  };
}
