/**
 * The one composition root: every adapter is built here, from the configuration, with the same
 * settings for the daemon, every CLI command, the demo and the bench. Each part is built on first
 * use, so a command builds only what it needs (`status` never touches FTP credentials or S3), and
 * `close()` closes exactly what was built, in order, even when one close fails.
 */

import type { AwsCredentialIdentity } from '@smithy/types';
import { Queue } from 'bullmq';
import { makeRedisAfterSyncStore } from './adapters/redis-after-sync.js';
import { makeRedisApiTokens, makeRedisPendingUploads, makeRedisRateLimiter } from './adapters/redis-api.js';
import { makeRedisBandwidth } from './adapters/redis-bandwidth.js';
import { makeRedisBatchStore } from './adapters/redis-batches.js';
import { makeRedisBudget } from './adapters/redis-budget.js';
import { makeRedis, makeRedisClient, type RedisClient } from './adapters/redis-client.js';
import { makeRedisPollLocks } from './adapters/redis-lock.js';
import { makeRedisState } from './adapters/redis-state.js';
import { makeTenantStore } from './adapters/redis-tenants.js';
import { makeRedisUploadRecords } from './adapters/redis-uploads.js';
import { makeS3Client, makeS3Store, type S3Store } from './adapters/s3.js';
import { makeS3Presigner } from './adapters/s3-presign.js';
import { connectSource } from './adapters/source.js';
import { makeVelaAllocationCheck, type VelaCallOutcome } from './adapters/vela.js';
import { apiOnlyTenant, type Config, type TenantConfig } from './config.js';
import type { Logger } from './log.js';
import type { AfterSyncStore } from './ports/after-sync.js';
import type { AllocationCheck } from './ports/allocation.js';
import type { ApiTokenStore, PendingUploads, Presigner, RateLimiter } from './ports/api.js';
import type { BandwidthLimiter } from './ports/bandwidth.js';
import type { BatchStore } from './ports/batches.js';
import type { ConnectionBudget } from './ports/budget.js';
import type { SyncJobs } from './ports/jobs.js';
import type { PollLocks } from './ports/locks.js';
import type { ObjectStore } from './ports/object-store.js';
import type { SourceCredentials, SourceSession } from './ports/source.js';
import type { SyncStateStore } from './ports/sync-state.js';
import type { TenantDirectory, TenantStore } from './ports/tenants.js';
import type { UploadRecords } from './ports/upload-records.js';
import { BATCH_QUEUE } from './queue/batch-jobs.js';
import { POLL_QUEUE, SYNC_QUEUE } from './queue/jobs.js';
import { makeSyncJobs } from './queue/sync-jobs.js';
import type { BatchJobData } from './sync/batch/expand.js';
import { makeCredentialCache } from './sync/credentials.js';
import { makeSessionPool, type SessionPool } from './sync/pool.js';
import type { GroupResult, PollJobData, SyncQueueData, SyncResult } from './types.js';

/**
 * The poll lock's lifetime; it is renewed every third of it while the poll runs. A poller that dies
 * or loses Redis mid-poll holds the tenant's polls back for at most this long.
 */
const POLL_LOCK_MS = 20_000;

export interface RootOptions {
  /** An object store instead of the configured S3 (tests). */
  store?: ObjectStore;
  /** A Redis client to use (and close) instead of one made from `redis:` (the CLI's fail-fast one). */
  redis?: RedisClient;
  /** How long an idle FTP/SFTP session is kept for the next job (default: the pool's). */
  poolIdleMs?: number;
  /** Opens a session to a tenant's source instead of FTP/SFTP (tests, the scale bench). */
  connectSource?: (tenant: TenantConfig, creds: SourceCredentials) => Promise<SourceSession>;
  /** Onboarded tenants are re-read at most this often (0: every time, for short-lived commands). */
  tenantCacheMs?: number;
  /** S3 credentials for the presigner instead of the standard AWS chain (tests). */
  s3Credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export interface Root {
  readonly config: Config;
  readonly log: Logger;
  redis(): RedisClient;
  state(): SyncStateStore;
  tenants(): TenantStore;
  afterSyncStore(): AfterSyncStore;
  budget(): ConnectionBudget;
  /** Tenants' `maxBandwidth` budgets, shared by every replica. */
  bandwidth(): BandwidthLimiter;
  pool(): SessionPool;
  store(): ObjectStore;
  /** The S3 store's extras (stale multipart cleanup, readiness), when the store is S3. */
  s3(): S3Store | undefined;
  /** Vela's allocation check; undefined with `vela.enabled: false`. */
  allocation(
    onCall?: (call: { org: string; outcome: VelaCallOutcome; ms: number }) => void,
  ): AllocationCheck | undefined;
  pollLocks(): PollLocks;
  /** Upload API: tokens per org, pending uploads, the per-org rate limit, the presigner. */
  apiTokens(): ApiTokenStore;
  pendingUploads(): PendingUploads;
  rateLimiter(): RateLimiter;
  presigner(): Presigner;
  /** The tenants a call can belong to: configured and onboarded ones, and orgs of the upload API only. */
  callTenants(): TenantDirectory;
  syncQueue(): Queue<SyncQueueData, SyncResult | GroupResult>;
  pollQueue(): Queue<PollJobData>;
  jobs(): SyncJobs;
  /** Zip batches: their records and entry outcomes, and the queue of batch jobs. */
  batches(): BatchStore;
  batchQueue(): Queue<BatchJobData>;
  close(): Promise<void>;
}

/** The longest an upload API request waits for one Redis command. */
const API_REDIS_TIMEOUT_MS = 2_000;

export function makeRoot(config: Config, log: Logger, opts: RootOptions = {}): Root {
  const prefix = config.redis.prefix;
  const built = new Map<string, unknown>();
  /** Builds `name` once. */
  const once = <T>(name: string, make: () => T): T => {
    if (!built.has(name)) built.set(name, make());
    return built.get(name) as T;
  };
  const redis = () => once('redis', () => opts.redis ?? makeRedis(config.redis));
  // The upload API's stores get a connection of their own:
  // - ioredis auto-pipelining: the commands of a burst of presigns issued in one turn of the event
  //   loop go out in one write (bench:api: about 15 % of the server's CPU per request). Not on the
  //   shared connection: BullMQ, which duplicates it for its workers, is not known to be safe with it;
  // - fail fast: a request waits at most API_REDIS_TIMEOUT_MS for Redis, and a command is not kept
  //   for a reconnect, so a Redis outage answers 503 with Retry-After (StoreUnavailableError) instead
  //   of holding every request until the client gives up.
  const apiRedis = () =>
    opts.redis
      ? opts.redis
      : once('apiRedis', () =>
          makeRedisClient(config.redis, {
            enableAutoPipelining: true,
            maxRetriesPerRequest: 0,
            commandTimeout: API_REDIS_TIMEOUT_MS,
          }),
        );
  const tenants = () =>
    once('tenants', () => makeTenantStore(redis(), config, { cacheMs: opts.tenantCacheMs }));
  // A replica that dies frees its connection slots as soon as its jobs can run elsewhere.
  const budget = () =>
    once('budget', () => makeRedisBudget(redis(), prefix, { leaseMs: config.worker.lockDuration }));
  // Open multipart uploads, recorded so a crash leaves nothing behind (see ports/upload-records.ts).
  // A process's lease lives as long as a job lock: a worker gone that long has lost its jobs too.
  const uploads = () =>
    once('uploads', () => makeRedisUploadRecords(redis(), prefix, { leaseMs: config.worker.lockDuration }));
  const s3 = () =>
    once('s3', () =>
      opts.store
        ? undefined
        : makeS3Store(config.s3, makeS3Client(config.s3, { log }), { records: uploads(), log }),
    );
  const syncQueue = () =>
    once(
      'syncQueue',
      () => new Queue<SyncQueueData, SyncResult | GroupResult>(SYNC_QUEUE, { connection: redis(), prefix }),
    );
  const pollQueue = () =>
    once('pollQueue', () => new Queue<PollJobData>(POLL_QUEUE, { connection: redis(), prefix }));
  let closing: Promise<void> | undefined;

  const root: Root = {
    config,
    log,
    redis,
    state: () => once('state', () => makeRedisState(redis(), prefix)),
    tenants,
    afterSyncStore: () => once('afterSync', () => makeRedisAfterSyncStore(redis(), prefix)),
    budget,
    bandwidth: () => once('bandwidth', () => makeRedisBandwidth(redis(), prefix)),
    pool: () =>
      once('pool', () =>
        makeSessionPool({
          budget: budget(),
          credentials: makeCredentialCache(tenants().credentials, config.credentials.cacheTtl, (org) =>
            tenants().revision(org),
          ),
          connect:
            opts.connectSource ??
            ((t, c) => connectSource(t, c, { timeoutMs: config.defaults.sourceTimeout })),
          log,
          idleMs: opts.poolIdleMs,
        }),
      ),
    store: () => opts.store ?? (s3() as S3Store),
    s3,
    allocation: (onCall) =>
      once('allocation', () =>
        config.vela.enabled
          ? makeVelaAllocationCheck({
              url: config.vela.url,
              token: config.vela.token,
              timeoutMs: config.vela.timeout,
              onCall,
            })
          : undefined,
      ),
    pollLocks: () => once('pollLocks', () => makeRedisPollLocks(redis(), prefix, POLL_LOCK_MS)),
    apiTokens: () => once('apiTokens', () => makeRedisApiTokens(apiRedis(), prefix)),
    pendingUploads: () => once('pendingUploads', () => makeRedisPendingUploads(apiRedis(), prefix)),
    rateLimiter: () =>
      once('rateLimiter', () => makeRedisRateLimiter(apiRedis(), prefix, { limit: config.api.rateLimit })),
    presigner: () =>
      once('presigner', () => {
        // The credentials of the daemon's S3 client (the standard AWS chain), refreshed by the SDK.
        const fixed = opts.s3Credentials;
        const credentials: () => Promise<AwsCredentialIdentity> = fixed
          ? async () => fixed
          : (() => {
              const client = makeS3Client(config.s3, { log });
              built.set('presignClient', client);
              return () => client.config.credentials();
            })();
        return makeS3Presigner(config.s3, credentials);
      }),
    callTenants: () =>
      once('callTenants', (): TenantDirectory => {
        // API-only orgs (registered by `tokens create`, no source) take the defaults' call settings.
        const get = async (org: string) =>
          (await tenants().get(org)) ??
          ((await root.apiTokens().orgs()).includes(org) ? apiOnlyTenant(org, config.defaults) : undefined);
        return { list: () => tenants().list(), get };
      }),
    syncQueue,
    pollQueue,
    jobs: () => once('jobs', () => makeSyncJobs(syncQueue(), pollQueue(), config, redis())),
    batches: () => once('batches', () => makeRedisBatchStore(redis(), prefix)),
    batchQueue: () =>
      once('batchQueue', () => new Queue<BatchJobData>(BATCH_QUEUE, { connection: redis(), prefix })),
    close() {
      closing ??= (async () => {
        const step = async (name: string, fn: (v: never) => unknown) => {
          if (!built.has(name)) return;
          try {
            await fn(built.get(name) as never);
          } catch (err) {
            log.error({ err: String(err), part: name }, 'error during shutdown');
          }
        };
        await step('pool', (p: SessionPool) => p.closeAll());
        await step('budget', (b: ConnectionBudget) => b.close());
        await step('uploads', (u: UploadRecords) => u.close());
        await step('syncQueue', (q: Queue) => q.close());
        await step('pollQueue', (q: Queue) => q.close());
        await step('presignClient', (c: { destroy(): void }) => c.destroy());
        await step('batchQueue', (q: Queue) => q.close());
        await step('apiRedis', (r: RedisClient) => r.quit().catch(() => r.disconnect()));
        await step('redis', (r: RedisClient) => r.quit().catch(() => r.disconnect()));
      })();
      return closing;
    },
  };
  return root;
}
