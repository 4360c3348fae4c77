/**
 * Recursive listing of a tenant's source, filtered by include/exclude globs. Symbolic links are not
 * followed (a link loop on the server cannot trap a poll). Servers that show a link as what it points
 * to (ftp-srv, ProFTPD with `ShowSymlinks off`) make a loop look like an endless tree: a directory
 * whose listing is the same as one of its ancestors' is taken for such a loop and not descended.
 *
 * A configured directory that does not exist is reported in `missingDirs` and the others are listed
 * (the tenant is degraded, not down); when none of them exists it is a tenant-level error
 * (`TenantError`). A subdirectory the server refuses to list (permission denied, removed during the
 * poll) is skipped with a reason. Names that can never be synced (a control or bidi character, a `/`
 * in a name, a listing line no format fits: a newline cuts a name in two) are counted in `unsyncable`.
 */
import { createHash } from 'node:crypto';
import picomatch from 'picomatch';
import { ftpCode, TenantError, toError } from '../errors.js';
import type { SourceEntry, SourceListing, SourceSession } from '../ports/source.js';
import type { RemoteFile } from '../types.js';
import { hasUnsafeChars } from './key.js';

const MAX_DEPTH = 64;

export interface WalkOptions {
  dirs: string[];
  include: string[];
  exclude: string[];
  /** Called for entries skipped for a reason worth a log line. */
  onSkip?: (path: string, reason: string) => void;
}

export interface WalkResult {
  files: RemoteFile[];
  /** Entries listed, filtered out included. */
  entries: number;
  /** Configured directories that do not exist on the server (the others were listed). */
  missingDirs: string[];
  /** Names listed that cannot be synced, whatever the filters: how many, and the first few (quoted). */
  unsyncable: { count: number; sample: string[] };
}

/** How many unsyncable names a poll keeps as examples. */
const SAMPLE = 5;

export function makeFilter(include: string[], exclude: string[]): (path: string) => boolean {
  const opts = { nocase: true, dot: false };
  const inc = picomatch(include, opts);
  const exc = exclude.length ? picomatch(exclude, opts) : () => false;
  return (path) => inc(path) && !exc(path);
}

const join = (dir: string, name: string) => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);

/** A listed directory and its ancestors' listings (for loop detection). */
interface Listed {
  dir: string;
  signature: string;
  parent?: Listed;
}

/** What a listing shows, hashed: two listings with the same names, types, sizes and times are equal. */
function signatureOf(listing: SourceEntry[]): string {
  const lines = listing.map((e) => `${e.name}\0${e.type}\0${e.size}\0${e.mtime}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

const parentOf = (dir: string) => dir.slice(0, dir.lastIndexOf('/')) || '/';
const baseName = (dir: string) => dir.slice(dir.lastIndexOf('/') + 1);

/**
 * Whether a configured directory is missing: its parent lists and has no directory of that name.
 * `undefined` when it cannot be told (the root, or a parent we may not list).
 */
async function isMissing(session: SourceSession, dir: string): Promise<boolean | undefined> {
  if (dir === '/') return undefined;
  const parent = parentOf(dir);
  try {
    const name = baseName(dir);
    return !(await session.list(parent)).some((e) => e.name === name && e.type !== 'file');
  } catch (err) {
    // The parent may be missing too (/a/b/c with no /a): ask further up.
    return ftpCode(err) === undefined ? undefined : isMissing(session, parent);
  }
}

/** A configured directory that is not on the server. */
class MissingDirectory extends TenantError {}

const missing = (dir: string) =>
  new MissingDirectory(`directory ${dir} not found on the server (check dirs)`);

/** Lists a configured directory: a missing one (or one refused for good) fails the tenant. */
async function listRoot(session: SourceSession, dir: string): Promise<SourceListing> {
  let listing: SourceListing;
  try {
    listing = await session.list(dir);
  } catch (err) {
    // ftp-srv answers 451 ENOENT, others 550: ask the parent before blaming the tenant.
    if (ftpCode(err) === undefined) throw err;
    if (await isMissing(session, dir)) throw missing(dir);
    const code = ftpCode(err)!;
    if (code >= 500) throw new TenantError(`cannot list ${dir}: ${toError(err).message}`, { cause: err });
    throw err;
  }
  // vsftpd lists a directory that does not exist as an empty one.
  if (listing.length === 0 && (await isMissing(session, dir))) throw missing(dir);
  return listing;
}

export async function walk(session: SourceSession, opts: WalkOptions): Promise<WalkResult> {
  const accept = makeFilter(opts.include, opts.exclude);
  const files: RemoteFile[] = [];
  const visited = new Set<string>();
  let entries = 0;
  const missingDirs: string[] = [];
  const unsyncable = { count: 0, sample: [] as string[] };
  const cannotSync = (name: string) => {
    unsyncable.count++;
    if (unsyncable.sample.length < SAMPLE) unsyncable.sample.push(JSON.stringify(name));
  };
  const queue: { dir: string; depth: number; parent?: Listed }[] = opts.dirs.map((d) => ({
    dir: `/${d.replace(/^\/+|\/+$/g, '')}`,
    depth: 0,
  }));
  const roots = new Set(queue.map((q) => q.dir));
  while (queue.length) {
    const { dir, depth, parent } = queue.shift()!;
    if (visited.has(dir)) continue;
    visited.add(dir);
    let listing: SourceListing;
    if (depth === 0) {
      try {
        listing = await listRoot(session, dir);
      } catch (err) {
        if (!(err instanceof MissingDirectory)) throw err;
        missingDirs.push(dir);
        continue;
      }
    } else {
      try {
        listing = await session.list(dir);
      } catch (err) {
        // A reply from the server (permission denied, gone since its parent was listed): skip it.
        // Anything else (timeout, reset) fails the poll, which the next one retries.
        if (ftpCode(err) === undefined) throw err;
        opts.onSkip?.(dir, `cannot list: ${toError(err).message}`);
        continue;
      }
    }
    // The entries past a server's cap never arrive: say so, and sync what did.
    if (listing.truncated) opts.onSkip?.(dir, `listing truncated by the server: "${listing.truncated}"`);
    for (const line of listing.unreadable ?? []) cannotSync(line);
    const listed: Listed = { dir, signature: listing.length ? signatureOf(listing) : '', parent };
    let loop: Listed | undefined;
    for (let a = parent; a && listed.signature && !loop; a = a.parent) {
      if (a.signature === listed.signature) loop = a;
    }
    if (loop) {
      opts.onSkip?.(dir, `same listing as ${loop.dir}: a link loop on the server? not descended`);
      continue;
    }
    for (const e of listing) {
      entries++;
      if (e.name === '.' || e.name === '..') continue;
      if (e.name.includes('/') || hasUnsafeChars(e.name)) {
        cannotSync(e.name);
        // A `/` cannot be in a name; a control character fails its job for good with the reason.
        if (e.name.includes('/')) continue;
      }
      const abs = join(dir, e.name);
      if (e.type === 'dir') {
        if (depth + 1 > MAX_DEPTH) opts.onSkip?.(abs, `deeper than ${MAX_DEPTH} levels`);
        else queue.push({ dir: abs, depth: depth + 1, parent: listed });
        continue;
      }
      if (e.type !== 'file') continue;
      const path = abs.slice(1);
      if (!accept(path)) continue;
      files.push({ path, size: e.size, mtime: e.mtime, mtimeExact: e.mtimeExact, modifiedAt: e.modifiedAt });
    }
  }
  if (missingDirs.length > 0 && missingDirs.length === roots.size) {
    throw missingDirs.length === 1
      ? missing(missingDirs[0]!)
      : new TenantError(`directories ${missingDirs.join(', ')} not found on the server (check dirs)`);
  }
  return { files, entries, missingDirs, unsyncable };
}
