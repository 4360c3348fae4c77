/**
 * The whole path on a Redis Cluster (3 masters from `redis-server`, started by the test): the daemon
 * connects with `redis.nodes`, BullMQ runs under a hash-tagged prefix, sync state and connection
 * leases use one slot per tenant, an onboarded tenant's settings and secret are written in one MULTI,
 * and the operator commands (`tenants add`, `status`) work as child processes of the real CLI.
 */
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRedisState } from '../../src/adapters/redis-state.js';
import { makeS3Store } from '../../src/adapters/s3.js';
import { parseConfig } from '../../src/config.js';
import type { Daemon } from '../../src/main.js';
import { startDaemon } from '../../src/main.js';
import { openOps } from '../../src/ops/context.js';
import { getStatus } from '../../src/ops/status.js';
import { captureLog, completedFiles, waitIdle } from '../support/daemon.js';
import { type TempDir, tempDir } from '../support/fs.js';
import { writeConfigFile } from '../support/process.js';
import { type RedisCluster, startRedisCluster } from '../support/redis-cluster.js';
import { type S3TestServer, startS3 } from '../support/s3.js';
import { type Corpus, daemonConfig, listObjects, makeCorpus, passwordOf } from './corpus.js';
import { runCli as cli } from './helpers.js';

describe('Redis Cluster (3 masters): the end-to-end path with a hash-tagged prefix', () => {
  let cluster: RedisCluster;
  let dir: TempDir;
  let corpus: Corpus;
  let s3: S3TestServer;
  let client: Cluster;
  let daemon: Daemon | undefined;
  const logs = captureLog('info');
  const prefix = `{t-cluster-${randomBytes(3).toString('hex')}}`;
  const secretKey = randomBytes(32).toString('hex');
  let configFile: string;
  let doc: Record<string, unknown>;

  beforeAll(async () => {
    [cluster, dir, s3] = await Promise.all([startRedisCluster(), tempDir('scale-cluster'), startS3()]);
    // Four tenants: three from the file, the fourth (tenant-03) onboarded at run time.
    corpus = await makeCorpus(`${dir.path}/ftp`, {
      tenants: 4,
      filesPerTenant: 30,
      size: (i) => 500 + i * 97,
    });
    doc = daemonConfig({
      redis: { nodes: cluster.addresses, prefix },
      s3,
      corpus,
      extra: {
        defaults: { pollInterval: '1h', minFileAge: '1ms', maxConnections: 2 },
        worker: { concurrency: 4, keepCompleted: '1h' }, // completed jobs counted
      },
    });
    doc.tenants = (doc.tenants as { org: string }[]).filter((t) => t.org !== 'tenant-03');
    configFile = await writeConfigFile(dir.path, doc, 'cluster.yaml');
    client = new Cluster(cluster.nodes.map((n) => ({ host: n.host, port: n.port })));
  });

  afterAll(async () => {
    await daemon?.close();
    client?.disconnect();
    await Promise.allSettled([corpus?.ftp.stop(), s3?.stop()]);
    await cluster?.stop();
    await dir?.cleanup();
  });

  it('rejects a prefix without a hash tag on a cluster, naming the field', () => {
    expect(() => parseConfig({ ...doc, redis: { nodes: cluster.addresses, prefix: 'ftpsync' } })).toThrow(
      /redis\.prefix: on a Redis Cluster the prefix needs a hash tag .*"\{ftpsync\}"/,
    );
  });

  it('onboards a tenant through the CLI (settings and secret in one MULTI, one slot)', async () => {
    const { stdout } = await cli(
      [
        'tenants',
        'add',
        '-c',
        configFile,
        '--org',
        'tenant-03',
        '--host',
        '127.0.0.1',
        '--port',
        String(corpus.ftp.port),
        '--secure',
        'false',
        '--user',
        'tenant-03',
        '--password-stdin',
        '--dir',
        '/',
      ],
      { env: { FTPSYNC_SECRET_KEY: secretKey }, input: passwordOf('tenant-03') },
    );
    expect(stdout).toMatch(/tenant-03/);
    expect(await client.hlen(`${prefix}:tenant-secrets`)).toBe(1);
  });

  it('syncs every tenant, keeps sync state readable and answers status', async () => {
    const config = parseConfig(doc, { FTPSYNC_SECRET_KEY: secretKey });
    daemon = await startDaemon(config, {
      log: logs.log,
      store: makeS3Store(config.s3, s3.client), // s3rver's credentials, not the AWS chain's
      reconcileMs: 3_600_000,
      poolIdleMs: 500,
    });
    // Two sightings make a file stable. The scheduler's own first poll may be one of them (and hold
    // the lock for a moment), and fast workers may finish some files between the two: what counts is
    // that every file ends up synced (below), not how the enqueueing split between the polls.
    const poll = async (org: string) => {
      for (let i = 0; i < 100; i++) {
        const outcome = await daemon!.poller!.pollNow(org);
        if (outcome.kind === 'done') return outcome;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`${org}: no poll ran`);
    };
    for (const org of corpus.orgs) {
      expect(await poll(org), org).toMatchObject({ matched: 30 });
      await poll(org);
    }
    const counts = await waitIdle(daemon.syncQueue, 120_000);
    expect(counts).toMatchObject({ failed: 0 });
    expect(await completedFiles(daemon.syncQueue)).toBe(corpus.files.size);

    const objects = await listObjects(s3, corpus.orgs);
    expect(objects.map((o) => o.key).sort()).toEqual([...corpus.files.keys()].sort());
    for (const o of objects) expect(o.etag.replace(/"/g, ''), o.key).toBe(corpus.files.get(o.key)!.md5);

    // Sync state, read through the cluster client: one hash per tenant, `<bare prefix>:{org}:synced`.
    const state = makeRedisState(client, prefix);
    for (const org of corpus.orgs) {
      const synced = await state.allSynced(org);
      expect(synced.size, org).toBe(30);
      expect((await state.info(org)).files, org).toBe(30);
    }
    const bare = prefix.slice(1, -1);
    const slots = await Promise.all(
      corpus.orgs.map((org) => client.call('CLUSTER', 'KEYSLOT', `${bare}:{${org}}:synced`)),
    );
    const queueSlot = await client.call('CLUSTER', 'KEYSLOT', `${prefix}:sync:meta`);
    // Tenants are spread over slots (and masters), apart from the queues' slot.
    expect(new Set([...slots, queueSlot]).size).toBe(corpus.orgs.length + 1);
    const perNode = await cluster.keysPerNode();
    expect(perNode.filter((n) => n > 0).length).toBeGreaterThan(1);

    // status, in process and through the CLI (its own cluster connection).
    const ops = openOps(config, logs.log);
    try {
      const status = await getStatus(ops);
      expect(status.totals).toMatchObject({ tenants: 4, files: corpus.files.size, failed: 0 });
    } finally {
      await ops.close();
    }
    const { stdout } = await cli(['status', '-c', configFile, '--json'], {
      env: { FTPSYNC_SECRET_KEY: secretKey },
    });
    const json = JSON.parse(stdout) as { tenants: { org: string; synced: { files: number } }[] };
    expect(json.tenants.map((t) => [t.org, t.synced.files]).sort()).toEqual(
      corpus.orgs.map((org) => [org, 30]),
    );

    await daemon.close();
    daemon = undefined;
  });
});
