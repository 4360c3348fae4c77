/**
 * An S3-compatible server (s3rver) on a free 127.0.0.1 port, with the bucket created and its objects
 * on disk in the sandbox directory; and an SDK client set up the way such stores need: path-style
 * requests and no default CRC32 checksums (`WHEN_REQUIRED`).
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';

/** What the sandbox uses of s3rver 3.7, which ships no types. */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverClass = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  vhostBuckets: boolean;
  configureBuckets: { name: string }[];
}) => S3rverInstance;

/** s3rver accepts any key pair that signs consistently; these are its documented defaults. */
export const SANDBOX_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const SANDBOX_S3_REGION = 'us-east-1';

export interface SandboxS3 {
  endpoint: string;
  bucket: string;
  /** A client for the sandbox's store; `stop()` destroys it. */
  client: S3Client;
  stop(): Promise<void>;
}

function sandboxS3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: SANDBOX_S3_REGION,
    forcePathStyle: true,
    credentials: SANDBOX_S3_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export async function startS3(opts: { dir: string; bucket: string }): Promise<SandboxS3> {
  // Loaded with require: s3rver is CommonJS without type declarations.
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: opts.dir,
    vhostBuckets: false,
    configureBuckets: [{ name: opts.bucket }],
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = sandboxS3Client(endpoint);

  let stopping: Promise<void> | undefined;
  return {
    endpoint,
    bucket: opts.bucket,
    client,
    stop() {
      stopping ??= (async () => {
        client.destroy();
        await server.close();
      })();
      return stopping;
    },
  };
}
