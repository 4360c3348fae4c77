/**
 * The admin HTTP server: health, readiness, Prometheus metrics and the queue dashboard.
 *
 *   GET /healthz        200 while the process is alive (the container HEALTHCHECK)
 *   GET /readyz         200 when every check passes (Redis PING, S3 bucket), else 503 naming the failed
 *   GET /metrics        Prometheus text; needs the token when one is configured
 *   /admin/queues/...   Bull Board; always needs the token, and is off when none is configured
 *   GET /status         the status page (HTML, ./status-page.ts): always needs the token, off without
 *
 * The token is accepted as `Authorization: Bearer <token>` or as the password of basic auth (any user
 * name), which is what a browser prompts for. Unauthenticated answers never say more than "401".
 * /readyz is open (probes carry no token), so its body names a failed check and an error code, never
 * an error message (which could quote a host or a key).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Queue } from 'bullmq';
import { toError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Status } from '../ops/status.js';
import type { Listener } from './dashboard.js';

const DASHBOARD_PATH = '/admin/queues';

export interface AdminHttpOptions {
  /** @defaultValue 127.0.0.1 (config `http.host`) */
  host?: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Protects /metrics and enables the dashboard (config `http.token`). */
  token?: string;
  metrics: Pick<Metrics, 'render' | 'contentType'>;
  /** Readiness checks by name; each resolves when its dependency answers. */
  checks: Record<string, () => Promise<void>>;
  /** The queues the dashboard shows. */
  queues: readonly Queue[];
  /** What the status page shows (`ftp-sync status`'s data); no page without it. */
  status?: () => Promise<Status>;
  /**
   * How often the status page reloads itself.
   * @defaultValue 10
   */
  statusRefreshSeconds?: number;
  log: Logger;
  /**
   * How long a readiness check may take before it counts as failed.
   * @defaultValue 3000
   */
  checkTimeoutMs?: number;
}

export interface AdminHttp {
  /** `http://host:port`, without a trailing slash. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startAdminHttp(opts: AdminHttpOptions): Promise<AdminHttp> {
  const log = opts.log.child({ component: 'http' });
  const host = opts.host ?? '127.0.0.1';
  const authorized = opts.token ? makeTokenCheck(opts.token) : undefined;
  // Bull Board and Hono are loaded only with a token (the dashboard is off without one).
  const dashboard: Listener | undefined = authorized
    ? (await import('./dashboard.js')).makeDashboard(DASHBOARD_PATH, opts.queues)
    : undefined;
  const checkTimeoutMs = opts.checkTimeoutMs ?? 3000;

  async function readiness(): Promise<{ ready: boolean; checks: Record<string, string> }> {
    const entries = await Promise.all(
      Object.entries(opts.checks).map(async ([name, check]) => {
        try {
          await withTimeout(check(), checkTimeoutMs);
          return [name, 'ok'] as const;
        } catch (e) {
          const err = toError(e);
          log.warn({ check: name, err: err.message }, 'readiness check failed');
          return [name, errorCode(err)] as const;
        }
      }),
    );
    return { ready: entries.every(([, v]) => v === 'ok'), checks: Object.fromEntries(entries) };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');

    if (path === DASHBOARD_PATH || path.startsWith(`${DASHBOARD_PATH}/`)) {
      if (!dashboard || !authorized) return send(res, 404, 'dashboard off: set http.token to enable it\n');
      if (!authorized(req.headers.authorization)) return unauthorized(res);
      return dashboard(req, res);
    }

    const route = ROUTES[path];
    if (!route) return send(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    switch (route) {
      case 'healthz':
        return send(res, 200, 'ok\n');
      case 'readyz': {
        const { ready, checks } = await readiness();
        const failed = Object.keys(checks).filter((k) => checks[k] !== 'ok');
        const body = ready ? { status: 'ready', checks } : { status: 'not ready', failed, checks };
        return send(res, ready ? 200 : 503, `${JSON.stringify(body)}\n`, 'application/json');
      }
      case 'metrics':
        if (authorized && !authorized(req.headers.authorization)) return unauthorized(res);
        return send(res, 200, await opts.metrics.render(), opts.metrics.contentType);
      case 'status': {
        // Tenant names and error messages: never without the token.
        if (!authorized || !opts.status)
          return send(res, 404, 'status page off: set http.token to enable it\n');
        if (!authorized(req.headers.authorization)) return unauthorized(res);
        const { renderStatusPage } = await import('./status-page.js');
        const page = renderStatusPage(await opts.status(), { refreshSeconds: opts.statusRefreshSeconds });
        // No script on the page, and none may run: an escaping slip cannot become script.
        res.setHeader(
          'content-security-policy',
          "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        );
        return send(res, 200, page, 'text/html; charset=utf-8');
      }
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      log.error({ err: toError(e).message, path: req.url }, 'admin request failed');
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: err.message }, 'admin http error'));

  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  if (!opts.token) {
    log.warn(
      `http.token is not set: the queue dashboard (${DASHBOARD_PATH}) and /status are off and /metrics is open`,
    );
  }
  if (!opts.token && !isLoopback(host)) {
    log.warn({ host }, 'admin http listens beyond this machine without a token');
  }
  log.info(
    {
      url,
      dashboard: opts.token ? `${url}${DASHBOARD_PATH}` : 'off',
      status: opts.token && opts.status ? `${url}/status` : 'off',
      metricsAuth: Boolean(opts.token),
    },
    'admin http listening',
  );

  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Scrapers and browsers keep connections alive: close them, or close() waits for them.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

const ROUTES: Record<string, 'healthz' | 'readyz' | 'metrics' | 'status' | undefined> = {
  '/healthz': 'healthz',
  '/readyz': 'readyz',
  '/metrics': 'metrics',
  '/status': 'status',
};

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function unauthorized(res: ServerResponse): void {
  // Basic first: that is the one a browser can prompt for (the password is the token).
  res.setHeader('www-authenticate', ['Basic realm="ftp-sync", charset="UTF-8"', 'Bearer realm="ftp-sync"']);
  send(res, 401, 'unauthorized\n');
}

/**
 * A check of an `Authorization` header against the token: `Bearer <token>`, or basic auth whose
 * password is the token. Compared in constant time (digests of equal length).
 */
export function makeTokenCheck(token: string): (header: string | undefined) => boolean {
  const want = digest(token);
  const same = (candidate: string) => timingSafeEqual(digest(candidate), want);
  return (header) => {
    if (!header) return false;
    const m = /^(\w+)\s+(.+)$/.exec(header.trim());
    if (!m) return false;
    const scheme = m[1]!.toLowerCase();
    if (scheme === 'bearer') return same(m[2]!);
    if (scheme !== 'basic') return false;
    const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 && same(decoded.slice(colon + 1));
  };
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** What /readyz says about a failed check: an error code or class name, never its message. */
function errorCode(err: Error): string {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code)) return code;
  if (err.name === 'TimeoutError') return 'timeout';
  return /^[A-Za-z][\w.-]{0,60}$/.test(err.name) && err.name !== 'Error' ? err.name : 'failed';
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`no answer within ${ms}ms`);
      err.name = 'TimeoutError';
      reject(err);
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
