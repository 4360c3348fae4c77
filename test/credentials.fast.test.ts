import { describe, expect, it } from 'vitest';
import { makeCredentialCache } from '../src/sync/credentials.js';

describe('credential cache', () => {
  it('keeps credentials for the TTL, but drops them when the tenant store revision changes', async () => {
    let password = 'old';
    let rev = '1';
    let fetched = 0;
    const cache = makeCredentialCache(
      {
        get: async () => {
          fetched++;
          return { user: 'u', password };
        },
      },
      60_000,
      async () => rev,
    );
    expect((await cache.get('acme')).password).toBe('old');
    password = 'new';
    expect((await cache.get('acme')).password).toBe('old'); // within the TTL, same revision
    expect(fetched).toBe(1);
    rev = '2'; // tenants update --password-stdin
    expect((await cache.get('acme')).password).toBe('new');
    expect(fetched).toBe(2);
  });

  it('without a revision source, keeps to the TTL', async () => {
    let fetched = 0;
    const cache = makeCredentialCache(
      {
        get: async () => {
          fetched++;
          return { user: 'u', password: 'p' };
        },
      },
      0,
    );
    await cache.get('acme');
    await cache.get('acme');
    expect(fetched).toBe(2);
  });
});
