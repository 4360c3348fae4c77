/**
 * An in-memory source server: a tree of files (bytes and mtime), directories and symbolic links,
 * and `SourceSession`s on it that keep the port's rules (src/ports/source.ts), proven by the source
 * conformance suite (test/conformance/source.test.ts runs it against this fake too):
 * - listings give exact UTC times (whole seconds, as MLSD and SFTP do) and tell links apart;
 * - a missing file or directory is a `NotFoundError` (permanent), other refusals a `PermanentError`;
 * - a wrong password is a `LoginRefusedError` (a `TenantError`) that never quotes a password;
 * - a download is written in chunks through the destination's backpressure; like basic-ftp, the
 *   destination is ended even when the transfer fails (callers must not take its end as success);
 * - a download can be cut after N bytes (a transient error, as a reset data connection is);
 * - rename replaces an existing target; mkdir creates the missing parents; after `close()` the
 *   session is unhealthy and refuses every command.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { TenantConfig } from '../../../src/config.js';
import { LoginRefusedError, NotFoundError, PermanentError, toError } from '../../../src/errors.js';
import type {
  SourceCredentials,
  SourceEntry,
  SourceListing,
  SourceSession,
} from '../../../src/ports/source.js';

type Node =
  | { type: 'file'; content: Buffer; mtime: Date }
  | { type: 'dir'; children: Map<string, Node>; mtime: Date }
  | { type: 'link'; target: string; mtime: Date };

/** What a listing shows of a file: the version a poll would queue (path relative to the root). */
export interface ListedVersion {
  path: string;
  size: number;
  mtime: string;
}

export interface MemorySourceOptions {
  user?: string;
  password?: string;
  /** Bytes per chunk written to a download's destination. @defaultValue 64 KiB */
  chunkSize?: number;
}

export interface MemorySource {
  readonly user: string;
  readonly password: string;
  /** Writes a file (making its parents), `size` pseudo-random bytes when a number is given. */
  write(path: string, content: string | Uint8Array | number, opts?: { mtime?: Date }): Buffer;
  mkdir(path: string): void;
  symlink(path: string, target: string): void;
  remove(path: string): void;
  /** A file's bytes, or undefined when there is no file at `path`. */
  read(path: string): Buffer | undefined;
  exists(path: string): boolean;
  /** The version a listing shows of the file at `path` (absolute), with the path made relative. */
  version(path: string): ListedVersion;
  /** Replaces the tree with the contents of a directory on disk (links kept as links). */
  loadDir(dir: string): Promise<void>;
  /** Logs in (with `password` instead of the right one when given). */
  connect(opts?: { user?: string; password?: string }): Promise<SourceSession>;
  /** The session pool's `connect` (src/sync/pool.ts). */
  connectFor(tenant: TenantConfig, creds: SourceCredentials): Promise<SourceSession>;
  /**
   * The next download of `path` delivers `bytes` bytes, then fails as a reset data connection does;
   * with `quiet`, it resolves instead, as basic-ftp does when the data connection closes cleanly
   * early (only the byte count tells the caller).
   */
  cutNextDownload(path: string, bytes: number, opts?: { quiet?: boolean }): void;
  /** The next login fails with `err` (TooManyConnectionsError, TlsError, UnreachableError, …). */
  failNextLogin(err: Error): void;
  /** Sessions open now, logins made, and every command in order (`list /dir`, `download /a`, …). */
  readonly stats: { open: number; logins: number; commands: string[] };
}

const segments = (p: string) => p.split('/').filter((s) => s !== '' && s !== '.');
const seconds = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);

/** Deterministic bytes (fast, and different per file). */
function pseudoRandom(size: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}

export function makeMemorySource(opts: MemorySourceOptions = {}): MemorySource {
  const user = opts.user ?? 'test';
  const password = opts.password ?? 'memory-source-Pa55';
  const chunkSize = opts.chunkSize ?? 64 * 1024;
  let root: Node & { type: 'dir' } = { type: 'dir', children: new Map(), mtime: new Date() };
  const cuts = new Map<string, { bytes: number; quiet: boolean }>();
  const loginFailures: Error[] = [];
  const stats = { open: 0, logins: 0, commands: [] as string[] };
  let seed = 1;

  /** The node at `path`, following links when `follow` (and for every directory on the way). */
  function find(path: string, follow = true, depth = 0): Node | undefined {
    if (depth > 8) return undefined;
    let node: Node = root;
    const parts = segments(path);
    for (let i = 0; i < parts.length; i++) {
      if (node.type !== 'dir') return undefined;
      const next = node.children.get(parts[i]!);
      if (!next) return undefined;
      if (next.type === 'link' && (follow || i < parts.length - 1)) {
        const base = `/${parts.slice(0, i).join('/')}`;
        const target = next.target.startsWith('/') ? next.target : `${base}/${next.target}`;
        const resolved = find(target, true, depth + 1);
        if (!resolved) return undefined;
        node = resolved;
      } else node = next;
    }
    return node;
  }

  function parentOf(path: string, make: boolean): { dir: Node & { type: 'dir' }; name: string } {
    const parts = segments(path);
    const name = parts.pop();
    if (name === undefined) throw new PermanentError(`${path}: not a file name`);
    let dir = root;
    for (const p of parts) {
      let next = dir.children.get(p);
      if (!next && make) {
        next = { type: 'dir', children: new Map(), mtime: new Date() };
        dir.children.set(p, next);
      }
      if (!next) throw new NotFoundError(`${path}: no such directory`);
      if (next.type !== 'dir') throw new PermanentError(`${path}: ${p} is not a directory`);
      dir = next;
    }
    return { dir, name };
  }

  function entryOf(name: string, node: Node): SourceEntry {
    const mtime = seconds(node.mtime);
    return {
      name,
      type: node.type,
      size: node.type === 'file' ? node.content.length : node.type === 'link' ? node.target.length : 0,
      mtime: mtime.toISOString(),
      mtimeExact: true,
      modifiedAt: mtime,
    };
  }

  const source: MemorySource = {
    user,
    password,
    stats,
    write(path, content, o = {}) {
      const buf =
        typeof content === 'number'
          ? pseudoRandom(content, seed++)
          : Buffer.from(typeof content === 'string' ? Buffer.from(content) : content);
      const { dir, name } = parentOf(path, true);
      dir.children.set(name, { type: 'file', content: buf, mtime: o.mtime ?? new Date() });
      return buf;
    },
    mkdir(path) {
      let dir = root;
      for (const p of segments(path)) {
        let next = dir.children.get(p);
        if (!next) {
          next = { type: 'dir', children: new Map(), mtime: new Date() };
          dir.children.set(p, next);
        }
        if (next.type !== 'dir') throw new PermanentError(`${path}: ${p} is not a directory`);
        dir = next;
      }
    },
    symlink(path, target) {
      const { dir, name } = parentOf(path, true);
      dir.children.set(name, { type: 'link', target, mtime: new Date() });
    },
    remove(path) {
      const { dir, name } = parentOf(path, false);
      if (!dir.children.delete(name)) throw new NotFoundError(`${path}: no such file`);
    },
    read(path) {
      const node = find(path);
      return node?.type === 'file' ? Buffer.from(node.content) : undefined;
    },
    exists: (path) => find(path, false) !== undefined,
    version(path) {
      const node = find(path);
      if (node?.type !== 'file') throw new Error(`memory source: no file ${path}`);
      const e = entryOf('', node);
      return { path: segments(path).join('/'), size: e.size, mtime: e.mtime };
    },
    async loadDir(diskRoot) {
      const load = async (dir: string): Promise<Node & { type: 'dir' }> => {
        const node: Node & { type: 'dir' } = {
          type: 'dir',
          children: new Map(),
          mtime: (await lstat(dir)).mtime,
        };
        for (const name of await readdir(dir)) {
          const p = join(dir, name);
          const st = await lstat(p);
          if (st.isSymbolicLink())
            node.children.set(name, { type: 'link', target: await readlink(p), mtime: st.mtime });
          else if (st.isDirectory()) node.children.set(name, await load(p));
          else if (st.isFile())
            node.children.set(name, { type: 'file', content: await readFile(p), mtime: st.mtime });
        }
        return node;
      };
      root = await load(diskRoot);
    },
    cutNextDownload(path, bytes, o = {}) {
      cuts.set(`/${segments(path).join('/')}`, { bytes, quiet: o.quiet ?? false });
    },
    failNextLogin(err) {
      loginFailures.push(err);
    },
    connectFor: (_tenant, creds) => source.connect({ user: creds.user, password: creds.password }),
    async connect(o = {}) {
      await Promise.resolve();
      const failure = loginFailures.shift();
      if (failure) throw failure;
      if ((o.user ?? user) !== user || (o.password ?? password) !== password) {
        throw new LoginRefusedError(`530 Login incorrect (user ${JSON.stringify(o.user ?? user)})`);
      }
      stats.logins++;
      stats.open++;
      let open = true;
      let healthy = true;
      const command = (what: string) => {
        if (!open) throw new Error(`${what}: the session is closed`);
        stats.commands.push(what);
      };

      /** From byte `offset` (0: the whole file), as RETR after REST does. */
      const download = async (remotePath: string, dest: Writable, offset: number, signal?: AbortSignal) => {
        command(offset ? `download ${remotePath} from ${offset}` : `download ${remotePath}`);
        const node = find(remotePath);
        if (!node) throw new NotFoundError(`download ${remotePath}: no such file`);
        if (node.type !== 'file') throw new PermanentError(`download ${remotePath}: not a plain file`);
        const key = `/${segments(remotePath).join('/')}`;
        const cut = cuts.get(key);
        cuts.delete(key);
        const content = node.content;
        const limit = cut === undefined ? content.length : Math.min(offset + cut.bytes, content.length);
        const write = (chunk: Buffer) =>
          new Promise<void>((resolve, reject) => {
            dest.write(chunk, (err?: Error | null) => (err ? reject(err) : resolve()));
          });
        const fail = (err: Error): never => {
          // basic-ftp ends the destination whatever happened: so does the fake.
          if (!dest.writableEnded && !dest.destroyed) dest.end();
          throw err;
        };
        try {
          for (let at = offset; at < limit; at += chunkSize) {
            if (signal?.aborted) {
              healthy = false;
              fail(toError(signal.reason));
            }
            await write(content.subarray(at, Math.min(limit, at + chunkSize)));
          }
        } catch (err) {
          fail(toError(err));
        }
        if (cut !== undefined && !cut.quiet) {
          fail(
            Object.assign(new Error(`download ${remotePath}: read ECONNRESET after ${limit} bytes`), {
              code: 'ECONNRESET',
            }),
          );
        }
        await new Promise<void>((resolve, reject) => {
          dest.end((err?: Error | null) => (err ? reject(err) : resolve()));
        });
      };

      const session: SourceSession = {
        get healthy() {
          return open && healthy;
        },
        async list(dir) {
          command(`list ${dir}`);
          const node = find(dir);
          if (!node) throw new NotFoundError(`list ${dir}: no such directory`);
          if (node.type !== 'dir') throw new PermanentError(`list ${dir}: not a directory`);
          const out: SourceListing = [...node.children].map(([name, child]) => entryOf(name, child));
          return out;
        },
        download(remotePath, dest, signal) {
          return download(remotePath, dest, 0, signal);
        },
        downloadFrom(remotePath, dest, offset, signal) {
          return download(remotePath, dest, offset, signal);
        },
        async rename(from, to) {
          command(`rename ${from} ${to}`);
          const node = find(from, false);
          if (!node) throw new NotFoundError(`rename ${from}: no such file`);
          let target: ReturnType<typeof parentOf>;
          try {
            target = parentOf(to, false);
          } catch (err) {
            throw new PermanentError(`rename ${from} → ${to}: ${(err as Error).message}`);
          }
          const existing = target.dir.children.get(target.name);
          if (existing?.type === 'dir')
            throw new PermanentError(`rename ${from} → ${to}: target is a directory`);
          const src = parentOf(from, false);
          src.dir.children.delete(src.name);
          target.dir.children.set(target.name, node);
        },
        async remove(path) {
          command(`remove ${path}`);
          const node = find(path, false);
          if (!node) throw new NotFoundError(`remove ${path}: no such file`);
          if (node.type === 'dir') throw new PermanentError(`remove ${path}: is a directory`);
          source.remove(path);
        },
        async mkdir(dir) {
          command(`mkdir ${dir}`);
          source.mkdir(dir);
        },
        close() {
          if (!open) return;
          open = false;
          stats.open--;
        },
      };
      return session;
    },
  };
  return source;
}
