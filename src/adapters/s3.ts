/**
 * The S3 adapter, by concern: `s3-client.ts` builds the tuned SDK client, `s3-store.ts` is the
 * `ObjectStore`, `s3-multipart.ts` streams multipart parts (`s3-multipart-buffered.ts` the
 * `multipartUpload: buffer` variant). The only files that import the AWS SDK.
 */
export { makeS3Client, sdkLogger, TunedS3Client, USER_AGENT } from './s3-client.js';
export { encodeMetadata, MIN_PART_SIZE, partSizeFor, S3IdleTimeoutError } from './s3-multipart.js';
export { MAX_SINGLE_PUT, makeS3Store, type S3Store } from './s3-store.js';
