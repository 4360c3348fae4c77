/**
 * A synthetic source: listings generated on the fly, so a bench or a test can poll thousands of
 * tenants with thousands of files each without an FTP server and without keeping the files anywhere.
 *
 * A tenant's tree is `<mount>/d<k>/call-<i>.wav` for i in 0 … files − 1, `perDir` files per
 * directory; file i has a size and an exact mtime derived from i and its generation, and its bytes
 * are a pseudo-random stream of that size from (seed, i, generation): the same file downloads the same
 * bytes every time. `touch(i)` makes a new version of file i (a new mtime and size); `grow(n)` adds
 * files. Everything outside the mount is served by an optional in-memory overlay (test/support/fakes/
 * source.ts) — the source conformance suite runs against the two together, with files in both.
 *
 * The sessions keep the port's rules (src/ports/source.ts): exact UTC times, a missing file or
 * directory is a `NotFoundError`, a wrong password a `LoginRefusedError`, the destination of a
 * download is ended even when it fails, a closed session refuses every command.
 */
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { LoginRefusedError, NotFoundError } from '../../../src/errors.js';
import type { SourceEntry, SourceListing, SourceSession } from '../../../src/ports/source.js';
import type { MemorySource } from './source.js';

export interface SyntheticOptions {
  files: number;
  /** Files per generated directory. @defaultValue 1000 */
  perDir?: number;
  /** Where the generated tree is. @defaultValue '/synthetic' */
  mount?: string;
  /** Size of file i (generation g). @defaultValue 1 KiB + (i × 7919) mod 64 KiB */
  size?: (i: number, generation: number) => number;
  /** mtime of generation 0. @defaultValue 2026-01-01T00:00:00Z */
  epoch?: Date;
  seed?: string;
  password?: string;
  /** Served outside the mount (and its login is the overlay's). */
  overlay?: MemorySource;
}

export interface SyntheticSource {
  readonly password: string;
  readonly mount: string;
  /** Files currently in the generated tree. */
  readonly files: number;
  /** Lists served by this source's sessions (all of them, generated or overlay). */
  readonly stats: { lists: number; downloads: number; logins: number };
  /** A new version of file i (next generation: another mtime and size). */
  touch(i: number): void;
  grow(n: number): void;
  /** The path (relative, as a poll names it), size and mtime of file i now. */
  version(i: number): { path: string; size: number; mtime: string };
  /** The bytes of file i now. */
  bytes(i: number): Buffer;
  connect(opts?: { password?: string }): Promise<SourceSession>;
}

export function makeSyntheticSource(opts: SyntheticOptions): SyntheticSource {
  const perDir = opts.perDir ?? 1000;
  const mount = `/${(opts.mount ?? '/synthetic').replace(/^\/+|\/+$/g, '')}`;
  const sizeOf = opts.size ?? ((i: number, g: number) => 1024 + ((i * 7919 + g * 104_729) % 65_536));
  const epoch = (opts.epoch ?? new Date('2026-01-01T00:00:00Z')).getTime();
  const seed = opts.seed ?? 'synthetic';
  const password = opts.overlay?.password ?? opts.password ?? 'synthetic-Pa55';
  const generation = new Map<number, number>();
  let files = opts.files;
  const stats = { lists: 0, downloads: 0, logins: 0 };

  const gen = (i: number) => generation.get(i) ?? 0;
  const name = (i: number) => `call-${i}.wav`;
  const mtimeOf = (i: number) => new Date(epoch + gen(i) * 60_000 + (i % 86_400) * 1000);
  const rel = (i: number) => `${mount.slice(1)}/d${Math.floor(i / perDir)}/${name(i)}`;
  const dirs = () => Math.ceil(files / perDir);

  function stream(i: number, size: number): Buffer {
    const out = Buffer.alloc(size);
    let block = createHash('sha256')
      .update(`${seed}\0${i}\0${gen(i)}`)
      .digest();
    for (let at = 0; at < size; at += block.length) {
      block.copy(out, at, 0, Math.min(block.length, size - at));
      block = createHash('sha256').update(block).digest();
    }
    return out;
  }

  /** The generated file at `path`, or why there is none. */
  function fileAt(path: string): number | undefined {
    const m = new RegExp(`^${reEscape(mount)}/d(\\d+)/call-(\\d+)\\.wav$`).exec(path);
    if (!m) return undefined;
    const i = Number(m[2]);
    return i < files && Math.floor(i / perDir) === Number(m[1]) && String(i) === m[2] ? i : undefined;
  }

  function listGenerated(path: string): SourceListing | undefined {
    if (path === mount) {
      return Array.from({ length: dirs() }, (_, k) => ({
        name: `d${k}`,
        type: 'dir' as const,
        size: 0,
        mtime: new Date(epoch).toISOString(),
        mtimeExact: true,
      }));
    }
    const m = new RegExp(`^${reEscape(mount)}/d(\\d+)$`).exec(path);
    if (!m || String(Number(m[1])) !== m[1] || Number(m[1]) >= dirs()) return undefined;
    const first = Number(m[1]) * perDir;
    const out: SourceEntry[] = [];
    for (let i = first; i < Math.min(files, first + perDir); i++) {
      const modifiedAt = mtimeOf(i);
      out.push({
        name: name(i),
        type: 'file',
        size: sizeOf(i, gen(i)),
        mtime: modifiedAt.toISOString(),
        mtimeExact: true,
        modifiedAt,
      });
    }
    return out;
  }

  const source: SyntheticSource = {
    password,
    mount,
    get files() {
      return files;
    },
    stats,
    touch(i) {
      generation.set(i, gen(i) + 1);
    },
    grow(n) {
      files += n;
    },
    version: (i) => ({ path: rel(i), size: sizeOf(i, gen(i)), mtime: mtimeOf(i).toISOString() }),
    bytes: (i) => stream(i, sizeOf(i, gen(i))),
    async connect(o = {}) {
      await Promise.resolve();
      if ((o.password ?? password) !== password)
        throw new LoginRefusedError('530 Login incorrect (synthetic source)');
      const overlay = opts.overlay
        ? await opts.overlay.connect({ password: o.password ?? password })
        : undefined;
      stats.logins++;
      let open = true;
      const check = (what: string) => {
        if (!open) throw new Error(`${what}: the session is closed`);
      };
      const norm = (p: string) => `/${p.split('/').filter(Boolean).join('/')}`;
      const inMount = (p: string) => p === mount || p.startsWith(`${mount}/`);
      const session: SourceSession = {
        get healthy() {
          return open;
        },
        async list(dir) {
          check('LIST');
          stats.lists++;
          const path = norm(dir);
          if (inMount(path)) {
            const listing = listGenerated(path);
            if (!listing) throw new NotFoundError(`${path}: no such directory`);
            return listing;
          }
          const listing: SourceListing = overlay ? await overlay.list(path) : [];
          if (path === '/' && !listing.some((e) => e.name === mount.slice(1)))
            listing.push({
              name: mount.slice(1),
              type: 'dir',
              size: 0,
              mtime: new Date(epoch).toISOString(),
              mtimeExact: true,
            });
          else if (!overlay && path !== '/') throw new NotFoundError(`${path}: no such directory`);
          return listing;
        },
        async download(remotePath: string, dest: Writable, signal?: AbortSignal) {
          check('RETR');
          const path = norm(remotePath);
          if (!inMount(path)) {
            if (!overlay) {
              dest.end();
              throw new NotFoundError(`${path}: no such file`);
            }
            return overlay.download(path, dest, signal);
          }
          const i = fileAt(path);
          if (i === undefined) {
            dest.end();
            throw new NotFoundError(`${path}: no such file`);
          }
          stats.downloads++;
          const body = stream(i, sizeOf(i, gen(i)));
          for (let at = 0; at < body.length; at += 64 * 1024) {
            if (signal?.aborted) {
              dest.end();
              throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
            }
            if (!dest.write(body.subarray(at, at + 64 * 1024)))
              await new Promise<void>((r) => dest.once('drain', () => r()));
          }
          await new Promise<void>((resolve, reject) =>
            dest.end((err?: Error | null) => (err ? reject(err) : resolve())),
          );
        },
        ...(overlay?.rename && { rename: (from: string, to: string) => overlay.rename!(from, to) }),
        ...(overlay?.remove && { remove: (p: string) => overlay.remove!(p) }),
        ...(overlay?.mkdir && { mkdir: (p: string) => overlay.mkdir!(p) }),
        close() {
          open = false;
          overlay?.close();
        },
      };
      return session;
    },
  };
  return source;
}

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
