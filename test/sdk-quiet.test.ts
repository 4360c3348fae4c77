/**
 * "An error was encountered in a non-retryable streaming request." — the AWS SDK writes it to the
 * console (when it has no logger, or its own NoOpLogger) each time a request with a streamed body
 * fails. The fault tests make such failures on purpose, so a green `npm test` printed it several
 * times. The daemon's client (and the tests') now give the SDK `sdkLogger`: that notice goes to debug
 * (the error itself reaches the caller), any other SDK warning or error is still logged.
 */
import { Readable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeS3Client, sdkLogger } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { captureLog } from './support/daemon.js';
import { freePort } from './support/ports.js';

const NOTICE = 'An error was encountered in a non-retryable streaming request.';

afterEach(() => {
  vi.restoreAllMocks();
});

/** A streamed PutObject to a port nobody listens on (loopback): fails at once. */
async function failingStreamedPut(client: S3Client): Promise<Error> {
  const body = Readable.from([Buffer.alloc(1000)]);
  const err = await client
    .send(new PutObjectCommand({ Bucket: 'calls', Key: 'a.wav', Body: body, ContentLength: 1000 }))
    .catch((e: Error) => e);
  client.destroy();
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

const s3Config = (endpoint: string) =>
  parseConfig({ s3: { bucket: 'calls', endpoint, forcePathStyle: true }, vela: { enabled: false } }).s3;

const credentials = { accessKeyId: 'x', secretAccessKey: 'y' };

describe('the AWS SDK notice of a failed streamed request', () => {
  it('is what an SDK client without a logger prints on the console (the source of the noise)', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    await failingStreamedPut(
      new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1 }),
    );
    expect(warn.mock.calls.flat()).toContain(NOTICE);
  });

  it('the daemon client sends it to debug, not the console, and the error still reaches the caller', async () => {
    const warn = vi.spyOn(console, 'warn');
    const logs = captureLog('debug');
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const err = await failingStreamedPut(makeS3Client(s3Config(endpoint), { credentials, log: logs.log }));
    expect(err.message).toMatch(/ECONNREFUSED|connect/);
    expect(warn).not.toHaveBeenCalled();
    const lines = logs.lines.map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(lines).toContainEqual(expect.objectContaining({ level: 20, msg: NOTICE }));
  });

  it('other SDK warnings are not hidden; its per-command error log (the caller gets the error) goes to debug', () => {
    const logs = captureLog('debug');
    const logger = sdkLogger(logs.log);
    logger.warn('something else is wrong');
    logger.error('and this too');
    const lines = logs.lines.map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, msg: 'something else is wrong' }),
      expect.objectContaining({ level: 20, msg: 'and this too' }),
    ]);
    // Without a pino logger: to stderr.
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    sdkLogger().warn('visible');
    sdkLogger().warn(NOTICE);
    sdkLogger().error({ commandName: 'HeadObjectCommand', error: { name: 'NotFound' } });
    expect(write.mock.calls.map((c) => String(c[0]))).toEqual(['aws-sdk warn: visible\n']);
  });
});
