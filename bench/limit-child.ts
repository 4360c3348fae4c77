/**
 * The pipeline's own limits, each half alone, with the same number of connections as the tools:
 *
 * `ftp-read`: basic-ftp downloads of the corpus into a sink that drops the bytes.
 * `s3-write`: uploads of the same files from local disk (page cache) through ftp-sync's own S3
 * store, the way the daemon uploads them: one PutObject up to 16 MiB, a multipart upload
 * with streamed parts above.
 *
 * Timed from the parent's `go`; reports wall time, CPU and peak RSS.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { makeS3Client, makeS3Store } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { failChild, receive } from './lib/child.js';
import { type BenchFile, MiB, parallel } from './lib/corpus.js';

export interface LimitSpec {
  mode: 'ftp-read' | 's3-write';
  files: BenchFile[];
  connections: number;
  ftp: { host: string; port: number };
  s3: { endpoint: string; bucket: string; prefix: string; accessKeyId: string; secretAccessKey: string };
  /** Local copy of the FTP root (s3-write reads the files from here). */
  root: string;
}

const cpuSeconds = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;

async function ftpRead(spec: LimitSpec): Promise<() => Promise<void>> {
  const clients = await Promise.all(
    Array.from({ length: spec.connections }, async () => {
      const c = new Client(60_000);
      await c.access({ host: spec.ftp.host, port: spec.ftp.port, user: 'anonymous', password: 'bench@' });
      return c;
    }),
  );
  return async () => {
    let next = 0;
    await Promise.all(
      clients.map(async (c) => {
        while (next < spec.files.length) {
          const f = spec.files[next++]!;
          let n = 0;
          const sink = new Writable({
            write(chunk: Buffer, _e, cb) {
              n += chunk.length;
              cb();
            },
          });
          await c.downloadTo(sink, `/${f.path}`);
          if (n !== f.size) throw new Error(`${f.path}: ${n} of ${f.size} bytes`);
        }
        c.close();
      }),
    );
  };
}

/**
 * ftp-sync's own S3 store (the same upload paths and settings as the daemon: one PutObject
 * up to 16 MiB, streamed multipart parts above), fed from local files.
 */
function s3Write(spec: LimitSpec): () => Promise<void> {
  const cfg = parseConfig(
    {
      s3: { bucket: spec.s3.bucket, endpoint: spec.s3.endpoint, forcePathStyle: true },
      vela: { enabled: false },
    },
    {},
  ).s3;
  const { accessKeyId, secretAccessKey } = spec.s3;
  const client = makeS3Client(cfg, { credentials: { accessKeyId, secretAccessKey } });
  const store = makeS3Store(cfg, client);
  return async () => {
    await parallel(spec.files, spec.connections, async (f) => {
      const key = `${spec.s3.prefix}/${f.path}`;
      const metadata = { 'source-path': f.path, 'source-size': String(f.size) };
      const local = join(spec.root, f.path);
      const body =
        f.size <= cfg.multipartThreshold
          ? await readFile(local)
          : createReadStream(local, { highWaterMark: MiB });
      await store.put(key, body, { size: f.size, metadata });
    });
    client.destroy();
  };
}

async function main() {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as LimitSpec;
  const run = spec.mode === 'ftp-read' ? await ftpRead(spec) : s3Write(spec);
  process.send?.({ type: 'ready' });
  await receive('go');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await run();
  process.send?.({
    type: 'done',
    wallMs: performance.now() - t0,
    cpuSeconds: cpuSeconds(process.cpuUsage(cpu0)),
    maxRssKiB: process.resourceUsage().maxRSS,
  });
  await receive('exit');
  process.exit(0);
}

process.on('disconnect', () => process.exit(1));
main().catch(failChild);
