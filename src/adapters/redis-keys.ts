/**
 * The Redis key of one piece of a tenant's state. Every key of a tenant carries the hash tag `{org}`
 * so a Redis Cluster keeps a tenant's keys in one slot (multi-key scripts stay legal) and spreads
 * tenants over its masters. The prefix's own braces are dropped (`{ftpsync}` → `ftpsync:{acme}:…`):
 * the prefix's hash tag is for BullMQ's keys and would otherwise put every tenant's state in one slot.
 */
export function stateKey(prefix: string, org: string, name: string): string {
  return `${prefix.replace(/[{}]/g, '')}:{${org}}:${name}`;
}
