/**
 * Per-process pools of logged-in source sessions, one pool per tenant. Every open session holds a
 * lease of the tenant's connection budget (shared by all replicas through Redis); an idle session is
 * closed after `idleMs` and its lease given back, so idle replicas do not hoard a tenant's slots.
 * Sooner when another replica was just refused a slot of that tenant (checked every
 * `wantedCheckMs` while this process holds idle sessions): the slot goes where the work is.
 */

import type { TenantConfig } from '../config.js';
import { causeOf, ftpCode, LoginRefusedError, TooManyConnectionsError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ConnectionBudget } from '../ports/budget.js';
import type { SourceCredentials, SourceSession } from '../ports/source.js';
import type { CredentialCache } from './credentials.js';

export interface Lease {
  org: string;
  session: SourceSession;
  id: string;
}

export interface PoolDeps {
  budget: ConnectionBudget;
  credentials: CredentialCache;
  connect: (tenant: TenantConfig, creds: SourceCredentials) => Promise<SourceSession>;
  log: Logger;
  /** Close a session idle for this long. */
  idleMs?: number;
  /** After a 421, how long the lowered budget lasts. */
  penaltyMs?: number;
  /** While idle sessions are held, how often to ask whether other replicas want their slots. */
  wantedCheckMs?: number;
  /**
   * A session idle for less than this keeps its slot even when another replica wants it: between two
   * jobs of the same tenant a session is idle for a moment, and handing it over then costs a logout
   * here and a login there for every file (measured: 0.4 logins per file with 2 replicas). One that
   * stays idle this long has no work here, and goes. Shorter than a poll interval: the poller's
   * listing session, used once per poll, must not hold a slot another replica wants to transfer with.
   */
  wantedMinIdleMs?: number;
  /**
   * When the budget is used up but this process holds busy sessions of the tenant, how long to wait
   * for one of them to be handed over before giving up (the job is then delayed).
   */
  handoffWaitMs?: number;
  /**
   * While waiting for a hand-over with fewer than the tenant's slots held here, how often to ask the
   * budget for a slot another replica gave back (an idle session it closed because this tenant is
   * wanted): without it the job waits for its own process's busy sessions, and the tenant runs on
   * fewer connections than it may (measured: 2 replicas at 0.62× of one).
   */
  handoffPollMs?: number;
  /**
   * A job refused a slot while this process holds a busy session of the tenant waits for that one
   * first: only after waiting this long does it mark the tenant wanted, asking other replicas to give
   * their idle sessions up. Marked at once, the other replica gives a slot up that it needs again a
   * moment later: a logout there, a login here and back (measured with an FTP server 20 ms away:
   * 73 logins per 1,000 files with 2 replicas).
   */
  wantAfterMs?: number;
}

export interface SessionPool {
  /** A session of the tenant, or null when its connection budget is used up (try again later). */
  acquire(tenant: TenantConfig): Promise<Lease | null>;
  /** Gives a session back; an unhealthy one (or `discard`) is closed. */
  release(lease: Lease, discard?: boolean): Promise<void>;
  /**
   * Whether `acquire` could give a session now, taking nothing: > 0 yes (an idle session, one of
   * ours to be handed over, or a free slot), 0 no, < 0 logins are paused after 421s for that many ms.
   */
  room(tenant: TenantConfig): Promise<number>;
  /** After `acquire` gave nothing because logins are paused (421s): how many ms are left. */
  pausedFor(org: string): number | undefined;
  /** Sessions open in this process for a tenant. */
  open(org: string): number;
  /**
   * Closes every idle session and closes the pool: from now on `acquire` gives nothing and
   * `release` closes the session it is given (a poll or job still running at shutdown).
   */
  closeAll(): Promise<void>;
}

export function makeSessionPool(deps: PoolDeps): SessionPool {
  const idleMs = deps.idleMs ?? 5_000;
  const idle = new Map<string, { lease: Lease; timer: NodeJS.Timeout; since: number }[]>();
  const wantedMinIdleMs = deps.wantedMinIdleMs ?? 250;
  // Jobs of a tenant waiting in this process for a busy session to be given back.
  const waiters = new Map<string, ((lease: Lease | 'retry' | null) => void)[]>();
  const handoffWaitMs = deps.handoffWaitMs ?? 5_000;
  const handoffPollMs = deps.handoffPollMs ?? 150;
  const wantAfterMs = deps.wantAfterMs ?? 1_000;
  const openCount = new Map<string, number>();
  const bump = (org: string, d: number) => openCount.set(org, (openCount.get(org) ?? 0) + d);
  let closed = false;
  const pausedUntil = new Map<string, number>();
  const pause = (org: string, ms: number) => pausedUntil.set(org, Date.now() + ms);

  /** Closes the tenant's sessions idle for at least `wantedMinIdleMs`. */
  const closeIdle = (org: string) => {
    const list = idle.get(org) ?? [];
    const now = Date.now();
    for (const entry of [...list]) {
      if (now - entry.since < wantedMinIdleMs) continue;
      list.splice(list.indexOf(entry), 1);
      clearTimeout(entry.timer);
      void closeLease(entry.lease);
    }
  };
  // Gives idle slots back early when another replica wants them. Runs only while sessions are idle.
  let checking = false;
  const wantedTimer = setInterval(() => {
    const orgs = [...idle].filter(([, list]) => list.length).map(([org]) => org);
    if (!orgs.length || checking) return;
    checking = true;
    deps.budget
      .wanted(orgs)
      .then((wanted) => {
        for (const org of wanted) closeIdle(org);
      })
      .catch(() => {})
      .finally(() => {
        checking = false;
      });
  }, deps.wantedCheckMs ?? 250);
  wantedTimer.unref();

  async function closeLease(lease: Lease) {
    try {
      lease.session.close();
    } finally {
      bump(lease.org, -1);
      await deps.budget.release(lease.org, lease.id).catch(() => {});
    }
  }

  async function login(tenant: TenantConfig): Promise<SourceSession> {
    let creds = await deps.credentials.get(tenant.org);
    try {
      return await deps.connect(tenant, creds);
    } catch (err) {
      if (!causeOf(err, LoginRefusedError)) throw err;
      // A rotated password: refetch once, bypassing the cache.
      deps.log.info({ org: tenant.org }, 'login refused (530 / SSH auth): refetching credentials');
      deps.credentials.invalidate(tenant.org);
      creds = await deps.credentials.get(tenant.org);
      return deps.connect(tenant, creds);
    }
  }

  /** Logs in for the slot `id` of the budget (given back if the login fails). */
  async function loginWith(tenant: TenantConfig, id: string): Promise<Lease | null> {
    try {
      const session = await login(tenant);
      bump(tenant.org, 1);
      pausedUntil.delete(tenant.org);
      void deps.budget.loggedIn(tenant.org).catch(() => {});
      const lease = { org: tenant.org, session, id };
      if (closed) {
        // The pool closed during the login (shutdown): this session must not outlive it.
        await closeLease(lease);
        return null;
      }
      return lease;
    } catch (err) {
      await deps.budget.release(tenant.org, id).catch(() => {});
      if (causeOf(err, TooManyConnectionsError) || ftpCode(err) === 421) {
        // The server counts logins differently than we do (other clients, slow logout): back off.
        const inUse = await deps.budget.inUse(tenant.org);
        const { pausedMs } = await deps.budget.lower(
          tenant.org,
          Math.max(1, inUse),
          deps.penaltyMs ?? 120_000,
        );
        pause(tenant.org, pausedMs);
        deps.log.warn(
          { org: tenant.org, inUse, pausedMs },
          'server answered 421: lowering the connection budget and pausing logins',
        );
        return null;
      }
      throw err;
    }
  }

  /**
   * Waits for this process's next session of the tenant to be given back (a hand-over), up to
   * `handoffWaitMs`; when the budget may free up elsewhere (`polling`: this process holds fewer than
   * the tenant's slots), also asks it every `handoffPollMs`. A lease, a slot id, 'retry' (a session
   * of ours closed: try again) or null (nothing in time: the job is delayed).
   */
  function waitForSlot(tenant: TenantConfig, polling: boolean) {
    const since = Date.now();
    return new Promise<Lease | string | 'retry' | null>((resolve) => {
      const list = waiters.get(tenant.org) ?? [];
      waiters.set(tenant.org, list);
      let settled = false;
      const settle = (got: Lease | string | 'retry' | null) => {
        settled = true;
        clearTimeout(timer);
        clearInterval(poll);
        const i = list.indexOf(take);
        if (i >= 0) list.splice(i, 1);
        resolve(got);
      };
      const take = (lease: Lease | 'retry' | null) => settle(lease);
      const timer = setTimeout(() => settle(null), handoffWaitMs);
      const poll = polling
        ? setInterval(() => {
            void deps.budget
              .tryAcquire(tenant.org, tenant.maxConnections, {
                markWanted: Date.now() - since >= wantAfterMs,
              })
              .then((id) => {
                if (typeof id !== 'string') return;
                if (settled) void deps.budget.release(tenant.org, id).catch(() => {});
                else settle(id);
              })
              .catch(() => {});
          }, handoffPollMs)
        : undefined;
      list.push(take);
    });
  }

  return {
    async acquire(tenant) {
      if (closed) return null;
      const list = idle.get(tenant.org) ?? [];
      while (list.length) {
        const { lease, timer } = list.pop()!;
        clearTimeout(timer);
        if (lease.session.healthy && !deps.budget.lost(lease.id)) return lease;
        await closeLease(lease);
      }
      // This process holds every slot of the tenant: no need to ask Redis, wait for a hand-over. One
      // of its sessions coming back soon, a refusal does not ask other replicas for theirs (yet).
      const mine = openCount.get(tenant.org) ?? 0;
      const id =
        mine >= tenant.maxConnections
          ? {}
          : await deps.budget.tryAcquire(tenant.org, tenant.maxConnections, { markWanted: mine === 0 });
      if (typeof id !== 'string') {
        if (id.pausedMs) {
          pause(tenant.org, id.pausedMs);
          return null;
        }
        if (!(openCount.get(tenant.org) ?? 0)) return null;
        // Our own sessions hold some of the slots: take the next one given back rather than leaving
        // the queue, or a slot another replica gives back (its idle session closed because this
        // tenant is wanted), whichever comes first.
        const got = await waitForSlot(tenant, mine < tenant.maxConnections);
        if (got === 'retry') return this.acquire(tenant);
        if (got === null || typeof got !== 'string') return got;
        return loginWith(tenant, got);
      }
      return loginWith(tenant, id);
    },
    async release(lease, discard = false) {
      const waiting = waiters.get(lease.org);
      if (closed || discard || !lease.session.healthy || deps.budget.lost(lease.id)) {
        await closeLease(lease);
        // The slot is free again: let a waiter try for it (it may also get null and be delayed).
        waiting?.shift()?.('retry');
        return;
      }
      const next = waiting?.shift();
      if (next) return next(lease);
      const list = idle.get(lease.org) ?? [];
      idle.set(lease.org, list);
      const entry = {
        lease,
        since: Date.now(),
        timer: setTimeout(() => {
          const i = list.indexOf(entry);
          if (i >= 0) list.splice(i, 1);
          void closeLease(lease);
        }, idleMs),
      };
      entry.timer.unref();
      list.push(entry);
    },
    async room(tenant) {
      if (closed) return 0;
      if (idle.get(tenant.org)?.length || (openCount.get(tenant.org) ?? 0) > 0) return 1;
      const room = await deps.budget.room(tenant.org, tenant.maxConnections);
      if (room < 0) pause(tenant.org, -room);
      return room;
    },
    pausedFor(org) {
      const left = (pausedUntil.get(org) ?? 0) - Date.now();
      return left > 0 ? left : undefined;
    },
    open: (org) => openCount.get(org) ?? 0,
    async closeAll() {
      closed = true;
      clearInterval(wantedTimer);
      for (const list of waiters.values()) for (const w of list.splice(0)) w(null);
      const all = [...idle.values()].flat();
      idle.clear();
      await Promise.all(
        all.map(({ lease, timer }) => {
          clearTimeout(timer);
          return closeLease(lease);
        }),
      );
    },
  };
}
