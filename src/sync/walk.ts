/**
 * Recursive listing of a tenant's source, filtered by include/exclude globs. Symbolic links are not
 * followed (a link loop on the server cannot trap a poll).
 */
import picomatch from 'picomatch';
import type { SourceSession } from '../ports/source.js';
import type { RemoteFile } from '../types.js';

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
}

export function makeFilter(include: string[], exclude: string[]): (path: string) => boolean {
  const opts = { nocase: true, dot: false };
  const inc = picomatch(include, opts);
  const exc = exclude.length ? picomatch(exclude, opts) : () => false;
  return (path) => inc(path) && !exc(path);
}

const join = (dir: string, name: string) => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);

export async function walk(session: SourceSession, opts: WalkOptions): Promise<WalkResult> {
  const accept = makeFilter(opts.include, opts.exclude);
  const files: RemoteFile[] = [];
  const visited = new Set<string>();
  let entries = 0;
  const queue: { dir: string; depth: number }[] = opts.dirs.map((d) => ({
    dir: `/${d.replace(/^\/+|\/+$/g, '')}`,
    depth: 0,
  }));
  while (queue.length) {
    const { dir, depth } = queue.shift()!;
    if (visited.has(dir)) continue;
    visited.add(dir);
    for (const e of await session.list(dir)) {
      entries++;
      if (e.name === '.' || e.name === '..' || e.name.includes('/')) continue;
      const abs = join(dir, e.name);
      if (e.type === 'dir') {
        if (depth + 1 > MAX_DEPTH) opts.onSkip?.(abs, `deeper than ${MAX_DEPTH} levels`);
        else queue.push({ dir: abs, depth: depth + 1 });
        continue;
      }
      if (e.type !== 'file') continue;
      const path = abs.slice(1);
      if (!accept(path)) continue;
      files.push({ path, size: e.size, mtime: e.mtime, mtimeExact: e.mtimeExact, modifiedAt: e.modifiedAt });
    }
  }
  return { files, entries };
}
