import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';

export interface TempDir {
  path: string;
  cleanup(): Promise<void>;
}

/** A fresh directory under the OS temp dir (mode 0700, as mkdtemp makes it). */
export async function tempDir(prefix: string): Promise<TempDir> {
  const safe = prefix.replace(/[^A-Za-z0-9_-]/g, '_');
  const path = await mkdtemp(join(tmpdir(), `ftp-sync-${safe}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export interface WrittenFile {
  /** Absolute path on disk. */
  path: string;
  size: number;
  sha256: string;
}

const CHUNK = 1 << 20;

/**
 * Writes `content` (or `size` random bytes when a number is given) at `root/relPath`, creating the
 * directories between. Directories get mode 0755 and the file 0644 whatever the umask, so servers
 * that drop privileges (vsftpd serves anonymous users as `ftp`) can read them.
 */
export async function writeFileDeep(
  root: string,
  relPath: string,
  content: string | Uint8Array | number,
  opts: { mtime?: Date } = {},
): Promise<WrittenFile> {
  const path = resolve(root, relPath);
  const rel = relative(root, path);
  if (rel === '' || rel.startsWith('..')) throw new Error(`writeFileDeep: ${relPath} is outside ${root}`);
  await mkdir(dirname(path), { recursive: true });
  // chmod every directory between root and the file (mkdir's mode is filtered by the umask).
  const parts = rel.split(sep).slice(0, -1);
  for (let i = 1; i <= parts.length; i++) await chmod(join(root, ...parts.slice(0, i)), 0o755);

  const hash = createHash('sha256');
  let size: number;
  if (typeof content === 'number') {
    // Random bytes, written in chunks so large files never sit in memory whole.
    size = content;
    const fh = await open(path, 'w', 0o644);
    try {
      for (let done = 0; done < size; ) {
        const chunk = randomBytes(Math.min(CHUNK, size - done));
        hash.update(chunk);
        await fh.write(chunk);
        done += chunk.length;
      }
    } finally {
      await fh.close();
    }
  } else {
    const buf = typeof content === 'string' ? Buffer.from(content) : content;
    size = buf.length;
    hash.update(buf);
    await writeFile(path, buf, { mode: 0o644 });
  }
  await chmod(path, 0o644);
  if (opts.mtime) await utimes(path, opts.mtime, opts.mtime);
  return { path, size, sha256: hash.digest('hex') };
}

export function sha256(buf: Uint8Array | string): string {
  return createHash('sha256').update(buf).digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
