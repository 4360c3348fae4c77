import type { SourceCredentials } from './source.js';

/**
 * Where a tenant's source credentials come from. A secrets manager implements this without touching
 * the worker.
 */
export interface CredentialProvider {
  /** Throws `TenantError` when the tenant has no credentials. */
  get(org: string): Promise<SourceCredentials>;
}
