/**
 * Credentials are fetched at job time through a provider and cached briefly, so a rotated password
 * is picked up without a restart (and at once after a 530, see pool.ts). With `revision` (the
 * tenant store's revision of an onboarded tenant, itself cached a few seconds), an entry fetched
 * under another revision is dropped: `tenants update --password-stdin` takes effect within the
 * tenant store's cache time, not the credentials' TTL.
 */
import type { CredentialProvider } from '../ports/credentials.js';
import type { SourceCredentials } from '../ports/source.js';

export interface CredentialCache {
  get(org: string): Promise<SourceCredentials>;
  invalidate(org: string): void;
}

export function makeCredentialCache(
  provider: CredentialProvider,
  ttlMs: number,
  revision?: (org: string) => Promise<string | undefined>,
): CredentialCache {
  const cache = new Map<string, { creds: Promise<SourceCredentials>; until: number; rev?: string }>();
  return {
    async get(org) {
      const rev = await revision?.(org).catch(() => undefined);
      const hit = cache.get(org);
      if (hit && hit.until > Date.now() && hit.rev === rev) return hit.creds;
      const creds = provider.get(org);
      cache.set(org, { creds, until: Date.now() + ttlMs, rev });
      creds.catch(() => cache.delete(org));
      return creds;
    },
    invalidate(org) {
      cache.delete(org);
    },
  };
}
