/**
 * The status page (`/status` of the admin HTTP server) as a person sees it: a real daemon with three
 * tenants on the in-process FTP server, real Redis, S3 and the Vela stand-in, read in Debian's
 * chromium (headless, playwright-core) at a desktop and a phone viewport.
 * - acme: degraded (a configured directory whose name is markup), one name that cannot be synced
 *   (markup again): both shown as text, nothing of them runs.
 * - globex: over its Vela allocation, its file parked with the reason.
 * - initech: ok, its files synced.
 * Without the token: 401, nothing of the page. The page reloads itself.
 *
 * FTPSYNC_SCREENSHOTS=1 (npm run screenshots) writes docs/status-page.png and
 * docs/status-page-phone.png; otherwise the screenshots go to a temp folder.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAdminHttp } from '../src/http/server.js';
import type { Daemon } from '../src/main.js';
import type { Status } from '../src/ops/status.js';
import { launchChromium, type TestBrowser } from './support/browser.js';
import { captureLog, makeTestEnv, type TestEnv } from './support/daemon.js';
import { type TempDir, tempDir, writeFileDeep } from './support/fs.js';
import { describeNeeding, missing } from './support/needs.js';
import { freePort } from './support/ports.js';
import { waitFor } from './support/wait.js';

const TOKEN = 'status-page-token';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** A directory name and a file name a server could hand us: markup that must stay text. */
// What the functions evaluated in the page use (the tests are typed without the DOM library).
declare const window: { innerWidth: number; __pwned?: number };
declare const document: { documentElement: { scrollWidth: number }; body: unknown };
declare function getComputedStyle(el: unknown, pseudo?: string): { content: string; fontSize: string };
const noSidewaysScroll = () => document.documentElement.scrollWidth <= window.innerWidth;
const EVIL_DIR = '/<script>window.__pwned=1</script>';
const EVIL_NAME = '<img src=x onerror="window.__pwned=2">\tx.wav';

describeNeeding(missing.chromium(), 'the status page in a browser', () => {
  let env: TestEnv;
  let daemon: Daemon;
  let browser: TestBrowser;
  let shots: TempDir | undefined;
  let url: string;

  beforeAll(async () => {
    env = await makeTestEnv('status-page', {
      vela: true,
      moreTenants: ['globex', 'initech'],
      tenant: { dirs: ['/acme', EVIL_DIR] },
      config: { http: { enabled: true, port: await freePort(), token: TOKEN } },
    });
    env.vela!.setAllocation('globex', { status: 'exceeded' });
    await writeFileDeep(env.root, 'acme/a.wav', randomBytes(1_000));
    await writeFileDeep(env.root, `acme/${EVIL_NAME}`, randomBytes(10));
    await writeFileDeep(env.root, 'globex/held.wav', randomBytes(2_000));
    await writeFileDeep(env.root, 'initech/one.wav', randomBytes(3_000));
    await writeFileDeep(env.root, 'initech/two.wav', randomBytes(4_000));
    daemon = await env.start();
    url = `${daemon.http!.url}/status`;
    // A file is enqueued by the second poll that sees it unchanged; the scheduler's first poll may
    // overlap ours (then it is skipped): poll until every tenant's files are synced or parked (a
    // parked job stays delayed, so the queue is never idle).
    await waitFor(
      'files synced and parked',
      async () => {
        for (const org of ['acme', 'globex', 'initech']) await daemon.poller!.pollNow(org);
        const [acme, initech, parked] = await Promise.all([
          env.state.info('acme'),
          env.state.info('initech'),
          env.state.parked('globex'),
        ]);
        return acme.files === 1 && initech.files === 2 && parked.length === 1;
      },
      45_000,
      500,
    );
    browser = await launchChromium();
    if (!process.env.FTPSYNC_SCREENSHOTS) shots = await tempDir('status-shots');
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await env?.stop();
    await shots?.cleanup();
  });

  const shotPath = (name: string) => (shots ? join(shots.path, name) : join(ROOT, 'docs', name));

  async function openSignedIn(viewport: { width: number; height: number }): Promise<Page> {
    // What a person does: the browser asks for a user and password; the password is the token.
    const ctx = await browser.context({ viewport, httpCredentials: { username: 'ops', password: TOKEN } });
    const page = await ctx.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    const res = await page.goto(url);
    expect(res?.status()).toBe(200);
    expect(dialogs).toEqual([]);
    return page;
  }

  it('asks for the token: without it (or with a wrong one) 401 and no tenant data', async () => {
    // Headless, nobody answers the browser's password prompt: it gives up on the page.
    for (const credentials of [undefined, { username: 'ops', password: 'wrong' }]) {
      const ctx = await browser.context({ httpCredentials: credentials });
      const page = await ctx.newPage();
      const failed = await page.goto(url).then(
        (res) => `status ${res?.status()}`,
        (e: Error) => e.message,
      );
      expect(failed).toMatch(/ERR_INVALID_AUTH_CREDENTIALS|status 401/);
      expect(await page.locator('body').innerText()).not.toMatch(/acme|globex|initech/);
      // What the server answered, read by the same browser context.
      const res = await ctx.request.get(url);
      expect(res.status()).toBe(401);
      expect(res.headers()['www-authenticate']).toMatch(/^Basic realm="ftp-sync"/);
      expect(await res.text()).toBe('unauthorized\n');
      await ctx.close();
    }
  });

  it('shows each tenant with health, last poll and counts, the parked reason and the degraded directory as text', async () => {
    const page = await openSignedIn({ width: 1280, height: 900 });
    const rows = page.getByRole('table', { name: 'Tenants' }).locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(3);
    const row = async (org: string) =>
      (await rows.filter({ has: page.getByRole('link', { name: org, exact: true }) }).innerText()).replace(
        /\s+/g,
        ' ',
      );
    // Columns: tenant, health, last poll, synced, queued, parked, failed. The tab-named file may be a
    // failed job of acme besides being counted as unsyncable (its error quotes the markup: text too).
    const acmeText = await page.locator('section#t-acme').innerText();
    expect(await row('acme'), acmeText).toMatch(/^acme degraded \d+s ago .*1 \(1000 B\) 0 0 \d$/);
    expect(await row('globex')).toMatch(/^globex ok \d+s ago .*0 \(0 B\) 0 1 0$/);
    expect(await row('initech')).toMatch(/^initech ok \d+s ago .*2 \(6\.8 KiB\) 0 0 0$/);
    const totals = (await page.getByRole('list', { name: 'Totals' }).innerText()).replace(/\s+/g, ' ');
    expect(totals).toMatch(/3 tenants 0 unhealthy 1 degraded 3 files synced \(7\.8 KiB\) 1 parked \d failed/);

    const globex = page.locator('section#t-globex');
    await expect
      .poll(() => globex.innerText())
      .toMatch(/Parked \(1\)\s+globex\/held\.wav — allocation-exceeded: Vela: minute allocation exceeded/);
    const acme = await page.locator('section#t-acme').innerText();
    // Markup from the configuration and from the server's listing: shown as the characters they are.
    expect(acme).toContain(EVIL_DIR);
    expect(acme).toContain('not found on the server');
    expect(acme).toMatch(/Names that cannot be synced: \d+/);
    expect(acme).toContain(JSON.stringify(EVIL_NAME));
    expect(await page.locator('script, img').count()).toBe(0);
    expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
    expect(await page.getByRole('heading', { name: 'Batches' }).isVisible()).toBe(true);
    expect(await page.getByText('No batches in progress.').isVisible()).toBe(true);
    // Nothing wider than the window.
    expect(await page.evaluate(noSidewaysScroll)).toBe(true);
    await page.screenshot({ path: shotPath('status-page.png'), fullPage: true });
    await page.context().close();
  });

  it('reads on a phone: one card per tenant, labelled values, no sideways scrolling', async () => {
    const page = await openSignedIn({ width: 390, height: 844 });
    const rows = page.getByRole('table', { name: 'Tenants' }).locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(3);
    expect(await page.evaluate(noSidewaysScroll)).toBe(true);
    // Each tenant is a card as wide as the screen (less margins) with its values labelled.
    for (const org of ['acme', 'globex', 'initech']) {
      const card = rows.filter({ has: page.getByRole('link', { name: org, exact: true }) });
      const box = (await card.boundingBox())!;
      expect(box.width).toBeGreaterThan(300);
      expect(box.x + box.width).toBeLessThanOrEqual(390);
    }
    const globex = rows.filter({ has: page.getByRole('link', { name: 'globex', exact: true }) });
    const parkedCell = globex.locator('td[data-label="Parked"]');
    expect(await parkedCell.evaluate((td) => getComputedStyle(td, '::before').content)).toBe('"Parked"');
    expect((await parkedCell.innerText()).trim()).toBe('1');
    // Text stays readable: at least 14 px.
    expect(
      await page.evaluate(() => Number.parseFloat(getComputedStyle(document.body).fontSize)),
    ).toBeGreaterThanOrEqual(14);
    await page.screenshot({ path: shotPath('status-page-phone.png'), fullPage: true });
    await page.context().close();
  });
});

describeNeeding(missing.chromium(), 'the status page refreshes by itself', () => {
  it('reloads every refreshSeconds and shows what changed, with the token it was opened with', async () => {
    let reads = 0;
    const status = async (): Promise<Status> => {
      reads++;
      return {
        generatedAt: new Date().toISOString(),
        tenants: [],
        batches: [
          {
            id: `batch-${reads}`,
            org: 'acme',
            kind: 'resync',
            total: 10,
            done: Math.min(reads, 10),
            failed: 0,
            parked: 0,
          },
        ],
        totals: { tenants: 0, unhealthy: 0, degraded: 0, files: 0, bytes: 0, parked: 0, failed: 0 },
        queues: { sync: {}, poll: {} },
      };
    };
    const http = await startAdminHttp({
      port: 0,
      token: TOKEN,
      metrics: { render: async () => '', contentType: 'text/plain' },
      checks: {},
      queues: [],
      status,
      statusRefreshSeconds: 1,
      log: captureLog().log,
    });
    const browser = await launchChromium();
    try {
      const ctx = await browser.context({ httpCredentials: { username: 'ops', password: TOKEN } });
      const page = await ctx.newPage();
      await page.goto(`${http.url}/status`);
      const batches = page.getByRole('table', { name: 'Batches' });
      const shown = async () =>
        Number(/batch-(\d+)\s+resync\s+acme\s+\d+ of 10/.exec(await batches.innerText())?.[1]);
      const first = await shown();
      expect(first).toBeGreaterThanOrEqual(1);
      // Nobody touches the page: it loads again by itself (with the credentials it was opened with),
      // and shows the newer batches.
      await expect.poll(shown, { timeout: 15_000 }).toBeGreaterThanOrEqual(first + 2);
    } finally {
      await browser.close();
      await http.close();
    }
  });
});
