/**
 * What the scale-out test and bench share: a corpus of many tenants' files on one in-process FTP
 * server (each tenant logs in as its own user and sees only its own directory), and the daemon
 * configuration that points at it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileDeep } from '../support/fs.js';
import { type FtpTestServer, startFtpServer } from '../support/ftp-server.js';
import { listAll, type S3Request, type S3TestServer } from '../support/s3.js';

export interface CorpusFile {
  /** S3 key the file must end up under (`{org}/{path}`). */
  key: string;
  size: number;
  /** Hex MD5 of the content: s3rver's ETag of a PutObject. */
  md5: string;
}

export interface Corpus {
  orgs: string[];
  files: Map<string, CorpusFile>;
  bytes: number;
  ftp: FtpTestServer;
}

export const orgName = (i: number) => `tenant-${String(i).padStart(2, '0')}`;
export const passwordOf = (org: string) => `pw-${org}-5e3c`;

/**
 * Writes `tenants × filesPerTenant` files of `size(i)` random bytes under `root/<org>/calls/…` and
 * starts an FTP server on `root` where user `<org>` sees `root/<org>` as `/`.
 */
export async function makeCorpus(
  root: string,
  opts: { tenants: number; filesPerTenant: number; size: (i: number) => number },
): Promise<Corpus> {
  const orgs = Array.from({ length: opts.tenants }, (_, i) => orgName(i));
  const files = new Map<string, CorpusFile>();
  let bytes = 0;
  for (const org of orgs) {
    for (let i = 0; i < opts.filesPerTenant; i++) {
      const path = `calls/day-${i % 5}/call-${String(i).padStart(4, '0')}.wav`;
      const content = randomBytes(opts.size(i));
      await writeFileDeep(root, `${org}/${path}`, content);
      files.set(`${org}/${path}`, {
        key: `${org}/${path}`,
        size: content.length,
        md5: createHash('md5').update(content).digest('hex'),
      });
      bytes += content.length;
    }
  }
  const ftp = await startFtpServer({
    root,
    users: Object.fromEntries(orgs.map((o) => [o, passwordOf(o)])),
    homes: Object.fromEntries(orgs.map((o) => [o, o])),
  });
  return { orgs, files, bytes, ftp };
}

/** A daemon configuration document (YAML-ready) for the corpus; `extra` is merged over the top level. */
export function daemonConfig(opts: {
  redis: Record<string, unknown>;
  s3: S3TestServer;
  corpus: Corpus;
  extra?: Record<string, unknown>;
}): Record<string, unknown> {
  const { extra = {} } = opts;
  return {
    redis: opts.redis,
    s3: { bucket: opts.s3.bucket, endpoint: opts.s3.endpoint, forcePathStyle: true },
    vela: { enabled: false },
    defaults: { pollInterval: '1s', minFileAge: '1ms', maxConnections: 2 },
    log: { level: 'info' },
    ...extra,
    tenants: opts.corpus.orgs.map((org) => ({
      org,
      ftp: {
        host: '127.0.0.1',
        port: opts.corpus.ftp.port,
        secure: false,
        user: org,
        password: passwordOf(org),
      },
      dirs: ['/'],
      metadata: { defaultEmail: `agent@${org}.example` },
    })),
  };
}

/** The S3 key a logged request was for (`/bucket/a/b.wav?x-id=PutObject` → `a/b.wav`). */
export function keyOf(req: S3Request, bucket: string): string {
  const path = req.path.split('?')[0] ?? '';
  return decodeURIComponent(path.slice(bucket.length + 2));
}

/** Successful PutObject requests per key (multipart parts and failed or cut requests not counted). */
export function putsByKey(s3: S3TestServer): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of s3.requests()) {
    if (r.method !== 'PUT' || r.path.includes('uploadId=') || r.status < 200 || r.status > 299) continue;
    const key = keyOf(r, s3.bucket);
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

/**
 * Every object of the tenants, one listing per tenant: s3rver cannot page a listing past 1,000 keys
 * on Node 20 (its continuation token is DES-encrypted, which OpenSSL 3 refuses: a 500 InternalError).
 */
export async function listObjects(s3: S3TestServer, orgs: string[]) {
  const out = [];
  for (const org of orgs) out.push(...(await listAll(s3.directClient, s3.bucket, `${org}/`)));
  return out;
}
