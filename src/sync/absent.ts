/**
 * Which files a poll is about to enqueue have no object in S3 yet, found with one listing of their
 * keys' common prefix instead of one HEAD per file in the worker (invariant 2's check). Used only
 * when the listing is small next to the HEADs it replaces; otherwise, or when the listing fails,
 * nothing is known to be absent and every job does its HEAD as before.
 */
import type { ObjectStore } from '../ports/object-store.js';
import type { RemoteFile } from '../types.js';
import { objectKey } from './key.js';

/** Keys a listing may walk per file it could spare a HEAD: 10 means one page of 1,000 per 100 files. */
const KEYS_PER_FILE = 10;

/** Paths among `files` whose key has no object. Never throws: a failed listing finds nothing absent. */
export async function findAbsent(
  store: ObjectStore,
  keyTemplate: string,
  org: string,
  files: RemoteFile[],
): Promise<Set<string>> {
  const absent = new Set<string>();
  if (files.length === 0) return absent;
  const keys = new Map<string, string>();
  try {
    for (const f of files) keys.set(objectKey(keyTemplate, org, f.path), f.path);
  } catch {
    return absent; // an invalid key fails its own job with the reason
  }
  const prefix = commonDirPrefix([...keys.keys()]);
  const budget = files.length * KEYS_PER_FILE;
  const present = new Set<string>();
  try {
    for await (const o of store.list(prefix)) {
      if (present.size >= budget) return absent; // too many objects to list: HEAD each instead
      present.add(o.key);
    }
  } catch {
    return absent;
  }
  for (const [key, path] of keys) if (!present.has(key)) absent.add(path);
  return absent;
}

/** The longest prefix of every key that ends with `/` (the directory they all are in). */
function commonDirPrefix(keys: string[]): string {
  let p = keys[0] ?? '';
  for (const k of keys) {
    let i = 0;
    while (i < p.length && i < k.length && p[i] === k[i]) i++;
    p = p.slice(0, i);
  }
  return p.slice(0, p.lastIndexOf('/') + 1);
}
