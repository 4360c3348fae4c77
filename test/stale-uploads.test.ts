/**
 * Crash safety, the clean-up half: multipart uploads a crashed worker left open are aborted by the
 * worker role (our tenants' prefixes only, older than `s3.staleUploadAge`); a store that cannot list
 * multipart uploads (s3rver answers 501) gets one warning and no more attempts.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeS3Store } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { startStaleUploadCleanup } from '../src/sync/stale-uploads.js';
import { captureLog } from './support/daemon.js';
import { s3Client, startS3 } from './support/s3.js';

const DAY = 86_400_000;

function s3Config(endpoint: string, bucket = 'calls') {
  return parseConfig({ s3: { bucket, endpoint, forcePathStyle: true }, vela: { enabled: false } }).s3;
}

/** ListMultipartUploads in two pages and AbortMultipartUpload, as S3 answers them. */
function fakeS3(uploads: { key: string; id: string; initiated: Date }[]) {
  const aborted: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.searchParams.has('uploads')) {
      const prefix = url.searchParams.get('prefix') ?? '';
      const marker = url.searchParams.get('key-marker');
      const mine = uploads.filter((u) => u.key.startsWith(prefix));
      const page = marker ? mine.slice(2) : mine.slice(0, 2);
      const truncated = !marker && mine.length > 2;
      const last = page[page.length - 1];
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
          `<Bucket>calls</Bucket><Prefix>${prefix}</Prefix><MaxUploads>2</MaxUploads><IsTruncated>${truncated}</IsTruncated>` +
          (truncated && last
            ? `<NextKeyMarker>${last.key}</NextKeyMarker><NextUploadIdMarker>${last.id}</NextUploadIdMarker>`
            : '') +
          page
            .map(
              (u) =>
                `<Upload><Key>${u.key}</Key><UploadId>${u.id}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated></Upload>`,
            )
            .join('') +
          '</ListMultipartUploadsResult>',
      );
      return;
    }
    if (req.method === 'DELETE' && url.searchParams.has('uploadId')) {
      aborted.push(`${decodeURIComponent(url.pathname)}#${url.searchParams.get('uploadId')}`);
      res.writeHead(204);
      res.end();
      return;
    }
    res.writeHead(400);
    res.end();
  });
  return { server, aborted };
}

describe('stale multipart uploads', () => {
  let fake: ReturnType<typeof fakeS3>;
  let endpoint: string;
  const old = new Date(Date.now() - 2 * DAY);
  const recent = new Date(Date.now() - 60_000);
  beforeAll(async () => {
    fake = fakeS3([
      { key: 'acme/a.wav', id: 'u1', initiated: old },
      { key: 'acme/b.wav', id: 'u2', initiated: recent },
      { key: 'acme/c.wav', id: 'u3', initiated: old },
      { key: 'beta/d.wav', id: 'u4', initiated: old },
    ]);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => fake.server.close(resolve));
  });

  it('aborts the uploads under the prefix older than the age, over every page, and only those', async () => {
    const store = makeS3Store(s3Config(endpoint), s3Client(endpoint));
    expect(await store.abortStaleUploads('acme/', DAY)).toBe(2);
    expect(fake.aborted.sort()).toEqual(['/calls/acme/a.wav#u1', '/calls/acme/c.wav#u3']);
  });

  it("answers 'unsupported' for a store without ListMultipartUploads (s3rver: 501)", async () => {
    const s3 = await startS3();
    try {
      const store = makeS3Store(s3Config(s3.endpoint, s3.bucket), s3.client);
      expect(await store.abortStaleUploads('acme/', DAY)).toBe('unsupported');
    } finally {
      await s3.stop();
    }
  });

  it('the cleanup goes over every tenant prefix; one failing prefix does not stop the others; 501 is warned once', async () => {
    const logs = captureLog();
    const calls: string[] = [];
    let answer: (prefix: string) => number | 'unsupported' = (p) => {
      if (p === 'beta/') throw new Error('AccessDenied');
      return 1;
    };
    const cleanup = startStaleUploadCleanup({
      abortStaleUploads: async (prefix, age) => {
        calls.push(`${prefix}>${age}`);
        return answer(prefix);
      },
      prefixes: async () => ['acme/', 'beta/', 'gamma/'],
      olderThanMs: DAY,
      firstAfterMs: 3_600_000,
      log: logs.log,
    });
    try {
      expect(await cleanup.runOnce()).toBe(2);
      expect(calls).toEqual([`acme/>${DAY}`, `beta/>${DAY}`, `gamma/>${DAY}`]);
      expect(logs.text()).toMatch(/stale upload cleanup failed.*|AccessDenied/);
      answer = () => 'unsupported';
      calls.length = 0;
      expect(await cleanup.runOnce()).toBe(0);
      expect(await cleanup.runOnce()).toBe(0);
      expect(calls).toEqual([`acme/>${DAY}`]); // asked once, then never again
      expect(logs.lines.filter((l) => /does not list multipart uploads/.test(l))).toHaveLength(1);
    } finally {
      cleanup.close();
    }
  });
});
