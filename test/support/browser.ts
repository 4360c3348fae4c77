/**
 * Debian's chromium, headless, driven by playwright-core (no browser download): a fresh profile per
 * launch, nothing that talks to the network on its own (no component updates, sync or QUIC).
 */
import type { BrowserContext, BrowserContextOptions } from 'playwright-core';
import { tempDir } from './fs.js';
import { CHROMIUM } from './needs.js';

export interface TestBrowser {
  /** A new context (own cookies, credentials); closed with the browser. */
  context(opts?: BrowserContextOptions): Promise<BrowserContext>;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<TestBrowser> {
  const { chromium } = await import('playwright-core');
  const profile = await tempDir('chromium-profile');
  const persistent = await chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const browser = persistent.browser();
  if (!browser) throw new Error('playwright-core gave no browser for the persistent context');
  return {
    context: (opts) => browser.newContext(opts),
    async close() {
      await persistent.close();
      await profile.cleanup();
    },
  };
}
