/**
 * The Redis key of one piece of a tenant's state. Every key of a tenant carries the hash tag `{org}`
 * so a Redis Cluster keeps a tenant's keys in one slot (multi-key scripts stay legal) and spreads
 * tenants over its masters. The prefix's own braces are dropped (`{ftpsync}` → `ftpsync:{acme}:…`):
 * the prefix's hash tag is for BullMQ's keys and would otherwise put every tenant's state in one slot.
 */
export function stateKey(prefix: string, org: string, name: string): string {
  return `${prefix.replace(/[{}]/g, '')}:{${org}}:${name}`;
}

/** A tenant's key names (one slot: the `{org}` hash tag); the bucketed tables' bases end in `:`. */
export function stateKeys(prefix: string) {
  const k = (org: string, name: string) => stateKey(prefix, org, name);
  return {
    k,
    lh: (org: string) => k(org, 'lh'),
    base: (org: string, t: string) => `${k(org, t)}:`,
    mf: (org: string) => k(org, 'manifests'),
  };
}
