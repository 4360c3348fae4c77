/**
 * The pipeline's own limits, each half alone, with the same number of connections as the tools:
 *
 * `ftp-read`: basic-ftp downloads of the corpus into a sink that drops the bytes.
 * `s3-write`: uploads of the same files from local disk (page cache) with the AWS SDK, the way
 * ftp-sync does by default: one PutObject up to 16 MiB, a multipart upload (8 MiB parts, 4 at once)
 * above.
 *
 * Timed from the parent's `go`; reports wall time, CPU and peak RSS.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Client } from 'basic-ftp';
import { failChild, receive } from './lib/child.js';
import { type BenchFile, MiB, parallel } from './lib/corpus.js';

export interface LimitSpec {
  mode: 'ftp-read' | 's3-write';
  files: BenchFile[];
  connections: number;
  ftp: { host: string; port: number };
  s3: { endpoint: string; bucket: string; prefix: string };
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

function s3Write(spec: LimitSpec): () => Promise<void> {
  const client = new S3Client({
    endpoint: spec.s3.endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const Bucket = spec.s3.bucket;
  return async () => {
    await parallel(spec.files, spec.connections, async (f) => {
      const Key = `${spec.s3.prefix}/${f.path}`;
      const Metadata = { 'source-path': f.path, 'source-size': String(f.size) };
      const local = join(spec.root, f.path);
      if (f.size <= 16 * MiB) {
        const Body = await readFile(local);
        await client.send(new PutObjectCommand({ Bucket, Key, Body, ContentLength: f.size, Metadata }));
      } else {
        const up = new Upload({
          client,
          params: { Bucket, Key, Body: createReadStream(local, { highWaterMark: MiB }), Metadata },
          partSize: 8 * MiB,
          queueSize: 4,
        });
        await up.done();
      }
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
