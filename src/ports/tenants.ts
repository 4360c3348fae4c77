import type { TenantConfig } from '../config.js';

/** Which tenants exist: the config file's, plus those onboarded at run time. */
export interface TenantDirectory {
  list(): Promise<TenantConfig[]>;
  get(org: string): Promise<TenantConfig | undefined>;
}
