/**
 * The corpora: files written into vsftpd's anonymous root. Contents are a random 1 MiB block repeated,
 * with the file's own index in the first bytes of each MiB, so every file (and every part of a large
 * file) differs and nothing compresses; neither tool compresses or deduplicates anyway.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export interface BenchFile {
  /** Relative to the FTP root, no leading slash. */
  path: string;
  size: number;
}

export interface Corpus {
  /** Short name used in the table, S3 prefixes and org names. */
  name: string;
  label: string;
  /** One directory per tenant (a single-tenant corpus has one). */
  dirs: string[];
  files: BenchFile[];
  bytes: number;
}

export interface BenchSizes {
  rounds: number;
  big: number;
  medium: { count: number; size: number };
  small: { count: number; size: number };
  tenants: { tenants: number; count: number; size: number };
  pollEntries: number;
  /** Four files of each size, streamed at once, for the memory check. */
  memory: number[];
  /** FTP connections and concurrent uploads (per tenant for the tenant corpus). */
  connections: number;
  tenantConnections: number;
}

export const FULL: BenchSizes = {
  rounds: 3,
  big: GiB,
  medium: { count: 500, size: 2 * MiB },
  small: { count: 3000, size: 50 * KiB },
  tenants: { tenants: 10, count: 300, size: 50 * KiB },
  pollEntries: 100_000,
  memory: [256 * MiB, 3 * GiB],
  connections: 4,
  tenantConnections: 2,
};

export const QUICK: BenchSizes = {
  rounds: 1,
  big: 64 * MiB,
  medium: { count: 40, size: 2 * MiB },
  small: { count: 300, size: 50 * KiB },
  tenants: { tenants: 10, count: 30, size: 50 * KiB },
  pollEntries: 10_000,
  memory: [32 * MiB, 128 * MiB],
  connections: 4,
  tenantConnections: 2,
};

const pad = (n: number, w: number) => String(n).padStart(w, '0');

function many(dir: string, count: number, size: number): BenchFile[] {
  return Array.from({ length: count }, (_, i) => ({ path: `${dir}/f${pad(i, 6)}.wav`, size }));
}

function corpus(name: string, label: string, dirs: string[], files: BenchFile[]): Corpus {
  return { name, label, dirs, files, bytes: files.reduce((s, f) => s + f.size, 0) };
}

const sizeLabel = (n: number) =>
  n >= GiB ? `${n / GiB} GiB` : n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`;

export function transferCorpora(s: BenchSizes): Corpus[] {
  const t = s.tenants;
  const tenantDirs = Array.from({ length: t.tenants }, (_, i) => `tenants/t${pad(i, 2)}`);
  return [
    corpus('big', `1 × ${sizeLabel(s.big)}`, ['big'], [{ path: 'big/one.wav', size: s.big }]),
    corpus(
      'medium',
      `${s.medium.count} × ${sizeLabel(s.medium.size)}`,
      ['medium'],
      many('medium', s.medium.count, s.medium.size),
    ),
    corpus(
      'small',
      `${s.small.count} × ${sizeLabel(s.small.size)}`,
      ['small'],
      many('small', s.small.count, s.small.size),
    ),
    corpus(
      'tenants',
      `${t.tenants} tenants × ${t.count} × ${sizeLabel(t.size)}`,
      tenantDirs,
      tenantDirs.flatMap((d) => many(d, t.count, t.size)),
    ),
  ];
}

export function memoryCorpora(s: BenchSizes): Corpus[] {
  return s.memory.map((size) => {
    const dir = `mem-${sizeLabel(size).replace(' ', '')}`;
    return corpus(dir, `4 × ${sizeLabel(size)} at once`, [dir], many(dir, 4, size));
  });
}

const BLOCK = randomBytes(MiB);

/** Writes every file of the corpora under `root` (directories 0755, files 0644: vsftpd serves them). */
export async function writeCorpora(root: string, corpora: Corpus[]): Promise<void> {
  const files = corpora.flatMap((c) => c.files);
  const dirs = new Set(files.map((f) => dirname(f.path)));
  for (const d of dirs) await mkdir(join(root, d), { recursive: true, mode: 0o755 });
  let index = 0;
  await parallel(files, 8, async (f) => writeOne(join(root, f.path), f.size, index++));
}

/** `count` empty `.wav` files in `root/dir` (the no-change poll: only the listing matters). */
export async function writeEmptyFiles(root: string, dir: string, count: number): Promise<void> {
  await mkdir(join(root, dir), { recursive: true, mode: 0o755 });
  await parallel(
    Array.from({ length: count }, (_, i) => i),
    64,
    (i) => writeFile(join(root, dir, `e${pad(i, 6)}.wav`), '', { mode: 0o644 }),
  );
}

async function writeOne(path: string, size: number, index: number): Promise<void> {
  const fh = await open(path, 'w', 0o644);
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(MiB, size - done);
      const chunk = Buffer.from(BLOCK.subarray(0, n));
      chunk.write(`${index}:${done}:`, 0, 'latin1');
      await fh.write(chunk, 0, n);
      done += n;
    }
  } finally {
    await fh.close();
  }
  await chmod(path, 0o644);
}

export async function parallel<T>(
  items: T[],
  width: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, run));
}
