/**
 * Tenants onboarded at run time, stored in Redis; their source password encrypted with AES-256-GCM
 * under a key from the environment (FTPSYNC_SECRET_KEY). The org is the additional authenticated
 * data, so one tenant's ciphertext can never be decrypted as another's credentials.
 *
 *   <prefix>:tenants         hash  org → tenant settings JSON (no secret)
 *   <prefix>:tenant-secrets  hash  org → base64(iv | tag | ciphertext) of {"user","password"}
 *   <prefix>:tenant-revs     hash  org → revision, incremented at every add and update
 *
 * Both are written in one MULTI: on a Redis Cluster the prefix's hash tag (`{ftpsync}`, required by
 * the config there) keeps them in one slot.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { type Config, ConfigError, resolveTenant, type TenantConfig, tenantInputSchema } from '../config.js';
import { TenantError } from '../errors.js';
import type { SourceCredentials } from '../ports/source.js';
import type { TenantStore } from '../ports/tenants.js';
import { afterSyncProblem } from '../sync/move-target.js';
import type { RedisClient } from './redis-client.js';

/** Parses FTPSYNC_SECRET_KEY: 32 bytes as 64 hex characters or base64. */
function parseSecretKey(text: string | undefined): Buffer {
  if (!text) throw new ConfigError('FTPSYNC_SECRET_KEY is not set (needed for onboarded tenants)');
  const t = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) {
    throw new ConfigError(
      'FTPSYNC_SECRET_KEY: expected 32 bytes as 64 hex characters or base64 (openssl rand -hex 32)',
    );
  }
  return key;
}

function encryptCredentials(key: Buffer, org: string, creds: SourceCredentials): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(org));
  const body = Buffer.concat([cipher.update(JSON.stringify(creds), 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
}

function decryptCredentials(key: Buffer, org: string, blob: string): SourceCredentials {
  const raw = Buffer.from(blob, 'base64');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(org));
    decipher.setAuthTag(raw.subarray(12, 28));
    const text = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    return JSON.parse(text) as SourceCredentials;
  } catch {
    throw new TenantError(`credentials of tenant "${org}" cannot be decrypted: wrong FTPSYNC_SECRET_KEY?`);
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `patch` over `base`: objects merged key by key (so `{"metadata":{"pattern":…}}` keeps the other
 * metadata), anything else (arrays too) replaced; `null` removes a key.
 */
function mergeSettings(
  base: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (v === null) delete out[k];
    else out[k] = isPlainObject(v) && isPlainObject(out[k]) ? mergeSettings(out[k], v) : v;
  }
  return out;
}

/**
 * Config-file tenants plus onboarded ones. Config tenants win on a clash (onboarding refuses one).
 * Reads are cached for `cacheMs` so per-job lookups do not hit Redis every time.
 */
export function makeTenantStore(
  redis: RedisClient,
  config: Config,
  opts: { cacheMs?: number } = {},
): TenantStore {
  const prefix = config.redis.prefix;
  const settingsKey = `${prefix}:tenants`;
  const secretsKey = `${prefix}:tenant-secrets`;
  const revsKey = `${prefix}:tenant-revs`;
  const fromConfig = new Map(config.tenants.map((t) => [t.org, t]));
  const key = () => parseSecretKey(config.secretKey);
  let cache: { at: number; tenants: Map<string, TenantConfig>; revs: Record<string, string> } | undefined;

  function parseStored(json: string): TenantConfig | undefined {
    try {
      const parsed = tenantInputSchema.safeParse(JSON.parse(json));
      return parsed.success ? resolveTenant(parsed.data, config.defaults, 'onboarded') : undefined;
    } catch {
      return undefined;
    }
  }

  async function onboarded(): Promise<Map<string, TenantConfig>> {
    return (await load()).tenants;
  }

  async function load() {
    if (cache && Date.now() - cache.at < (opts.cacheMs ?? 5_000)) return cache;
    const [all, revs] = await Promise.all([redis.hgetall(settingsKey), redis.hgetall(revsKey)]);
    const tenants = new Map<string, TenantConfig>();
    for (const [org, json] of Object.entries(all)) {
      const t = parseStored(json);
      if (t && !fromConfig.has(org)) tenants.set(org, t);
    }
    cache = { at: Date.now(), tenants, revs };
    return cache;
  }

  /** Validates the settings (with the user) and writes them with the credentials, bumping the revision. */
  async function store(tenant: Record<string, unknown>, creds: SourceCredentials): Promise<TenantConfig> {
    const kind = tenant.sftp ? 'sftp' : 'ftp';
    const raw = { ...tenant, [kind]: { ...(tenant[kind] as object), user: creds.user } };
    const parsed = tenantInputSchema.safeParse(raw);
    if (!parsed.success) {
      const iss = parsed.error.issues[0]!;
      throw new ConfigError(`${iss.path.join('.') || 'tenant'}: ${iss.message}`);
    }
    const org = parsed.data.org;
    const afterSync = afterSyncProblem(resolveTenant(parsed.data, config.defaults, 'onboarded'));
    if (afterSync) throw new ConfigError(`${afterSync.field}: ${afterSync.message}`);
    if (fromConfig.has(org)) throw new ConfigError(`org "${org}" is defined in the configuration file`);
    const blob = encryptCredentials(key(), org, creds);
    if (parsed.data.sftp?.passphrase)
      throw new ConfigError(
        'sftp.passphrase: not stored for onboarded tenants (use an unencrypted key file)',
      );
    const { password: _drop, ...source } = (parsed.data.ftp ?? parsed.data.sftp)!;
    await redis
      .multi()
      .hset(settingsKey, org, JSON.stringify({ ...raw, [kind]: source }))
      .hset(secretsKey, org, blob)
      .hincrby(revsKey, org, 1)
      .exec();
    cache = undefined;
    return resolveTenant(parsed.data, config.defaults, 'onboarded');
  }

  async function storedCredentials(org: string): Promise<SourceCredentials> {
    const blob = await redis.hget(secretsKey, org);
    if (!blob) throw new TenantError(`no credentials for tenant "${org}"`);
    // A daemon started before the first onboarding, without the key: the tenant is marked
    // unhealthy with this reason (polls back off, status shows it), not a poll error every interval.
    let k: Buffer;
    try {
      k = key();
    } catch (err) {
      throw new TenantError(
        `cannot decrypt the credentials of onboarded tenant "${org}": ${(err as Error).message}; set it and restart`,
      );
    }
    return decryptCredentials(k, org, blob);
  }

  return {
    async list() {
      return [...fromConfig.values(), ...(await onboarded()).values()];
    },
    async get(org) {
      return fromConfig.get(org) ?? (await onboarded()).get(org);
    },
    async onboarded() {
      cache = undefined;
      return [...(await onboarded()).values()];
    },
    async add(input) {
      return store(input.tenant, { user: input.user, password: input.password });
    },
    async update(org, patch, creds = {}) {
      if (fromConfig.has(org)) {
        throw new ConfigError(
          `tenant "${org}" is defined in the configuration file: edit it there (and restart the daemons)`,
        );
      }
      const json = await redis.hget(settingsKey, org);
      if (!json) return undefined;
      const current = JSON.parse(json) as Record<string, unknown>;
      const old = await storedCredentials(org);
      const next = mergeSettings(current, patch);
      next.org = org;
      return store(next, { user: creds.user ?? old.user, password: creds.password ?? old.password });
    },
    async revision(org) {
      if (fromConfig.has(org)) return undefined;
      return (await load()).revs[org];
    },
    async remove(org) {
      const res = await redis.multi().hdel(settingsKey, org).hdel(secretsKey, org).hdel(revsKey, org).exec();
      cache = undefined;
      return Number(res?.[0]?.[1] ?? 0) > 0;
    },
    credentials: {
      async get(org) {
        const t = fromConfig.get(org);
        const source = t && (t.ftp ?? t.sftp);
        if (source) return { user: source.user ?? 'anonymous', password: source.password ?? '' };
        return storedCredentials(org);
      },
    },
    async verifyKey() {
      const secrets = await redis.hgetall(secretsKey);
      const orgs = Object.keys(secrets);
      if (!orgs.length) return;
      const k = key();
      for (const org of orgs) {
        try {
          decryptCredentials(k, org, secrets[org]!);
        } catch {
          throw new ConfigError(
            `FTPSYNC_SECRET_KEY does not decrypt the credentials of onboarded tenant "${org}" (wrong key?)`,
          );
        }
      }
    },
  };
}
