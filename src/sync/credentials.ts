/**
 * Credentials are fetched at job time through a provider and cached briefly, so a rotated password
 * is picked up without a restart (and at once after a 530, see pool.ts).
 */
import type { CredentialProvider } from '../ports/credentials.js';
import type { SourceCredentials } from '../ports/source.js';

export interface CredentialCache {
  get(org: string): Promise<SourceCredentials>;
  invalidate(org: string): void;
}

export function makeCredentialCache(provider: CredentialProvider, ttlMs: number): CredentialCache {
  const cache = new Map<string, { creds: Promise<SourceCredentials>; until: number }>();
  return {
    get(org) {
      const hit = cache.get(org);
      if (hit && hit.until > Date.now()) return hit.creds;
      const creds = provider.get(org);
      cache.set(org, { creds, until: Date.now() + ttlMs });
      creds.catch(() => cache.delete(org));
      return creds;
    },
    invalidate(org) {
      cache.delete(org);
    },
  };
}
