/**
 * The reads behind the scrape-time gauges (queue depths, parked files and health per tenant): one
 * snapshot per scrape, shared by every gauge's collect(), bounded in time, never piling up.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export type Registers = Registry[];

export interface JobCounter {
  readonly name: string;
  getJobCounts(): Promise<Record<string, number>>;
}

/** Where scrape-time gauges read from. Every function may be slow or fail; none is required. */
export interface ScrapeSources {
  /** The tenants to report per-tenant gauges for. */
  orgs(): Promise<readonly string[]>;
  /** Parked files of a tenant (Redis). */
  parked?(org: string): Promise<number>;
  /** A tenant's health as recorded in Redis. */
  health?(org: string): Promise<'ok' | 'unhealthy' | 'unknown'>;
  /** FTP sessions this process holds open for a tenant (the session pool's `open(org)`). */
  connectionsInUse?(org: string): number;
  /** The queues whose job counts are reported. */
  queues?(): readonly JobCounter[];
}

const HEALTH = { ok: 1, unhealthy: 0, unknown: Number.NaN } as const;

/** Refreshes closer together than this share one read (a scrape collects several gauges). */
const SNAPSHOT_REUSE_MS = 1000;

export interface Snapshot {
  orgs?: readonly string[];
  parked?: Map<string, number>;
  health?: Map<string, number>;
  queues?: { queue: string; state: string; count: number }[];
}

/** Returns the function each gauge calls for this scrape's snapshot (undefined: the reads failed). */
function makeSnapshotReader(
  sources: ScrapeSources | undefined,
  scrapeTimeoutMs: number,
  scrapeError: (source: string, err: unknown) => void,
): () => Promise<Snapshot | undefined> {
  let scrape: { started: number; settled: boolean; result: Promise<Snapshot | undefined> } | undefined;
  let reading: Promise<Snapshot> | undefined;

  async function readSnapshot(): Promise<Snapshot> {
    if (!sources) return {};
    const snap: Snapshot = {};
    const queues = sources.queues?.() ?? [];
    const [orgs, counts] = await Promise.allSettled([
      sources.orgs(),
      Promise.all(queues.map(async (q) => ({ queue: q.name, counts: await q.getJobCounts() }))),
    ]);
    if (counts.status === 'fulfilled') {
      snap.queues = counts.value.flatMap(({ queue, counts }) =>
        Object.entries(counts).map(([state, count]) => ({ queue, state, count })),
      );
    } else if (queues.length) scrapeError('queues', counts.reason);
    if (orgs.status === 'rejected') {
      scrapeError('orgs', orgs.reason);
      return snap;
    }
    snap.orgs = orgs.value;
    const perOrg = async (
      name: 'parked' | 'health',
      read: ((org: string) => Promise<number>) | undefined,
    ) => {
      if (!read) return;
      try {
        const values = await Promise.all(orgs.value.map(async (org) => [org, await read(org)] as const));
        snap[name] = new Map(values.filter(([, v]) => !Number.isNaN(v)));
      } catch (err) {
        scrapeError(name, err);
      }
    };
    const { parked, health } = sources;
    await Promise.all([
      perOrg('parked', parked && ((org) => parked.call(sources, org))),
      // A tenant not polled yet (`unknown`) has no series rather than a misleading 0 or 1.
      perOrg('health', health && (async (org) => HEALTH[await health.call(sources, org)])),
    ]);
    return snap;
  }

  /**
   * The snapshot of this scrape, shared by every gauge's collect(). A scrape reuses a snapshot taken
   * less than a second ago, and never starts a read while the previous one is still pending (a read
   * hangs while Redis is down: commands wait for the reconnect), so an outage cannot pile reads up.
   */
  function snapshot(): Promise<Snapshot | undefined> {
    if (scrape && (!scrape.settled || Date.now() - scrape.started < SNAPSHOT_REUSE_MS)) return scrape.result;
    reading ??= readSnapshot().finally(() => {
      reading = undefined;
    });
    const entry = { started: Date.now(), settled: false, result: withTimeout(reading, scrapeTimeoutMs) };
    entry.result.then(() => {
      entry.settled = true;
    });
    scrape = entry;
    return entry.result;
  }

  function withTimeout(work: Promise<Snapshot>, ms: number): Promise<Snapshot | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        scrapeError('timeout', new Error(`scrape reads took over ${ms}ms`));
        resolve(undefined);
      }, ms);
    });
    return Promise.race([work, timeout])
      .catch((err) => {
        scrapeError('snapshot', err);
        return undefined;
      })
      .finally(() => clearTimeout(timer));
  }

  return snapshot;
}

/**
 * The scrape-time gauges: one shared snapshot per scrape (metrics-snapshot.ts), applied by each
 * gauge's collect(). Returns the health gauge, which polls and tenant errors also set.
 */
export function scrapeGauges(
  registers: Registers,
  sources: ScrapeSources | undefined,
  scrapeTimeoutMs: number,
  onScrapeError?: (source: string, err: Error) => void,
): Gauge<'org'> {
  const scrapeErrors = new Counter({
    name: 'ftpsync_scrape_errors_total',
    help: 'Scrape-time reads that failed or timed out, by source (orgs, parked, health, queues).',
    labelNames: ['source'],
    registers,
    // Rendered after this scrape's reads, so a failure shows in the scrape it happened in.
    async collect() {
      if (sources) await snapshot();
    },
  });
  const scrapeError = (source: string, err: unknown) => {
    safe(() => scrapeErrors.inc({ source }));
    safe(() => onScrapeError?.(source, err instanceof Error ? err : new Error(String(err))));
  };

  const snapshot = makeSnapshotReader(sources, scrapeTimeoutMs, scrapeError);

  /** Replaces every series of a gauge with `values` (or clears it when the read failed). */
  const fill = <L extends string>(
    gauge: Gauge<L>,
    values: Iterable<[Partial<Record<L, string>>, number]> = [],
  ) => {
    gauge.reset();
    for (const [labels, v] of values) gauge.set(labels, v);
  };

  new Gauge({
    name: 'ftpsync_queue_jobs',
    help: 'Jobs in each BullMQ queue by state (cluster-wide: every replica reports the same value).',
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      if (!sources?.queues) return;
      const snap = await snapshot();
      fill(
        this,
        snap?.queues?.map(({ queue, state, count }) => [{ queue, state }, count]),
      );
    },
  });
  new Gauge({
    name: 'ftpsync_parked_files',
    help: 'Files parked (held back on purpose) per tenant (cluster-wide).',
    labelNames: ['org'],
    registers,
    async collect() {
      if (!sources?.parked) return;
      const snap = await snapshot();
      fill(
        this,
        [...(snap?.parked ?? [])].map(([org, n]) => [{ org }, n]),
      );
    },
  });
  const healthy = new Gauge({
    name: 'ftpsync_tenant_healthy',
    help: "1 when the tenant's last poll succeeded, 0 after a tenant-level error (login, TLS, directory).",
    labelNames: ['org'],
    registers,
    async collect() {
      if (!sources?.health) return;
      const snap = await snapshot();
      // Without a fresh read, the values this process saw itself stand.
      if (snap?.health)
        fill(
          this,
          [...snap.health].map(([org, v]) => [{ org }, v]),
        );
    },
  });
  new Gauge({
    name: 'ftpsync_ftp_connections_in_use',
    help: 'FTP sessions this process holds open per tenant (sum over replicas; the budget is per tenant).',
    labelNames: ['org'],
    registers,
    async collect() {
      const count = sources?.connectionsInUse;
      if (!count) return;
      const snap = await snapshot();
      fill(
        this,
        (snap?.orgs ?? []).map((org) => [{ org }, count.call(sources, org)]),
      );
    },
  });
  return healthy;
}

/** Runs a metric update; a side channel never breaks what it observes. */
export function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    // a side channel never breaks what it observes
  }
}
