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
  /**
   * Merges `patch` (a partial tenant object) into an onboarded tenant's stored settings and validates
   * the result; keeps the stored user and password unless given. Undefined when no such onboarded
   * tenant; throws ConfigError for a config-file tenant or an invalid result.
   */
  update(
    org: string,
    patch: Record<string, unknown>,
    creds?: { user?: string; password?: string },
  ): Promise<TenantConfig | undefined>;
  /**
   * The revision of an onboarded tenant's stored settings and credentials (changes at every add and
   * update), as recently read (the store's cache); undefined for config-file tenants.
   */
  revision(org: string): Promise<string | undefined>;
  remove(org: string): Promise<boolean>;
  /** Only the onboarded ones. */
  onboarded(): Promise<TenantConfig[]>;
  /** Throws ConfigError when onboarded tenants exist and the key is missing or does not decrypt them. */
  verifyKey(): Promise<void>;
}
