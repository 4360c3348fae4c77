import type { TenantConfig } from '../config.js';
import type { CredentialProvider } from './credentials.js';

/** Which tenants exist: the config file's, plus those onboarded at run time. */
export interface TenantDirectory {
  list(): Promise<TenantConfig[]>;
  get(org: string): Promise<TenantConfig | undefined>;
}

export interface OnboardInput {
  /** Tenant settings as in the config file's `tenants[]`, without `ftp.password`. */
  tenant: Record<string, unknown>;
  user: string;
  password: string;
}

export interface TenantStore extends TenantDirectory {
  /** Credentials of every tenant: inline ones from the config, decrypted ones for onboarded tenants. */
  readonly credentials: CredentialProvider;
  /** Validates and stores a tenant (or replaces its settings and credentials). */
  add(input: OnboardInput): Promise<TenantConfig>;
  remove(org: string): Promise<boolean>;
  /** Only the onboarded ones. */
  onboarded(): Promise<TenantConfig[]>;
  /** Throws ConfigError when onboarded tenants exist and the key is missing or does not decrypt them. */
  verifyKey(): Promise<void>;
}
