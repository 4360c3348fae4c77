/**
 * Loading the configuration: YAML, `${ENV_VAR}` expansion, validation with every problem reported at
 * once (each naming its field), then a frozen object. Nothing after `loadConfig` reads `process.env`.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { afterSyncProblem } from '../sync/move-target.js';
import { type Config, configSchema, resolveTenant } from './schema.js';

/**
 * A configuration mistake. Every problem found in the file is in `issues` (each names its field);
 * the message is all of them, one per line. The CLI exits with code 2.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly exitCode = 2;
  readonly issues: readonly string[];
  constructor(issues: string | readonly string[]) {
    const list = typeof issues === 'string' ? [issues] : issues;
    super(list.join('\n'));
    this.issues = list;
  }
}

/** `tenants[1].ftp.port` */
function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(top level)';
}

function formatIssue(iss: z.core.$ZodIssue): string {
  if (iss.code === 'unrecognized_keys') {
    return `${formatPath(iss.path)}: unknown key${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  if (iss.code === 'invalid_union')
    return `${formatPath(iss.path)}: expected { url, token } or { enabled: false }`;
  return `${formatPath(iss.path)}: ${iss.message}`;
}

/**
 * Fields that hold a secret the daemon cannot work without when it is given: an environment variable
 * that expands to the empty string there is a mistake (a variable exported empty, a blank line in an
 * env file), not a wish for an empty password. `http.token` is not one: empty turns the token off.
 */
const SECRET_FIELDS = [
  /^tenants\[\d+\]\.ftp\.password$/,
  /^tenants\[\d+\]\.sftp\.(password|passphrase|privateKeyFile)$/,
  /^vela\.token$/,
];

/** A `${VAR}` reference that could not be expanded, and the field it is in. */
export interface EnvProblem {
  path: PropertyKey[];
  message: string;
}

/**
 * Expands `${VAR}` in every string. A missing variable (or one set empty in a secret field) is added
 * to `problems`, naming the field, and the string is left as written; without `problems` the first
 * one is thrown as a ConfigError.
 */
function expandEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: PropertyKey[] = [],
  problems?: EnvProblem[],
): unknown {
  const report = (message: string) => {
    if (!problems) throw new ConfigError(`${formatPath(path)}: ${message}`);
    problems.push({ path, message });
  };
  if (typeof value === 'string') {
    let missing = false;
    const names: string[] = [];
    const out = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, name: string) => {
      names.push(name);
      const v = env[name];
      if (v === undefined) {
        missing = true;
        report(`environment variable ${name} is not set`);
        return whole;
      }
      return v;
    });
    if (missing) return value;
    if (names.length > 0 && out === '' && SECRET_FIELDS.some((re) => re.test(formatPath(path)))) {
      report(
        `environment variable ${names.join(', ')} is set but empty (this field needs a value, or leave it out)`,
      );
    }
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, [...path, i], problems));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, [...path, k], problems)]),
    );
  }
  return value;
}

/** Same path, or `inner` is below `outer`. */
function within(inner: readonly PropertyKey[], outer: readonly PropertyKey[]): boolean {
  return outer.length <= inner.length && outer.every((p, i) => p === inner[i]);
}

/** Checks of the tenant list that the tenant schema (shared with onboarding) does not make. */
function tenantListProblems(tenants: unknown): EnvProblem[] {
  if (!Array.isArray(tenants)) return [];
  const out: EnvProblem[] = [];
  const seen = new Map<string, number>();
  tenants.forEach((t: unknown, i) => {
    if (!t || typeof t !== 'object') return;
    const { org, sftp } = t as { org?: unknown; sftp?: unknown };
    if (typeof org === 'string') {
      const first = seen.get(org);
      if (first !== undefined)
        out.push({ path: ['tenants', i, 'org'], message: `duplicate org "${org}" (also tenants[${first}])` });
      else seen.set(org, i);
    }
    // Onboarded tenants get their password from the credential store; one in the file needs it here.
    if (sftp && typeof sftp === 'object') {
      const { password, privateKeyFile } = sftp as { password?: unknown; privateKeyFile?: unknown };
      if (password === undefined && !privateKeyFile) {
        out.push({ path: ['tenants', i, 'sftp'], message: 'expected a password or a privateKeyFile' });
      }
    }
  });
  return out;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/**
 * Expands `${VAR}`s and validates a parsed document. Every problem is reported at once, in one
 * ConfigError: missing (or, for secrets, empty) environment variables, then schema problems in the
 * fields that had none.
 */
/** How a command loads the configuration. */
export interface LoadOptions {
  /**
   * `optional`: the tenants' source credentials (`ftp.user`/`password`, `sftp.*` keys) may name unset
   * variables — for commands that never log in to a source (`status`, `tenants list`). Such a field
   * keeps its `${VAR}` text, which no server accepts.
   */
  sourceCredentials?: 'required' | 'optional';
}

/** The fields a command that never logs in to a source does not need. */
const SOURCE_CREDENTIALS =
  /^tenants\[\d+\]\.(ftp\.(user|password)|sftp\.(user|password|passphrase|privateKeyFile))$/;

export function parseConfig(doc: unknown, env: NodeJS.ProcessEnv = {}, opts: LoadOptions = {}): Config {
  if (doc === null || doc === undefined) throw new ConfigError('the configuration is empty');
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigError('the configuration must be a mapping');
  let envProblems: EnvProblem[] = [];
  const expanded = expandEnv(doc, env, [], envProblems);
  if (opts.sourceCredentials === 'optional') {
    envProblems = envProblems.filter((p) => !SOURCE_CREDENTIALS.test(formatPath(p.path)));
  }
  const problems = envProblems.map((p) => `${formatPath(p.path)}: ${p.message}`);
  const result = configSchema.safeParse(expanded);
  if (!result.success) {
    for (const iss of result.error.issues) {
      // A field whose variable is missing is reported once, for the variable.
      if (envProblems.some((p) => within(iss.path, p.path))) continue;
      problems.push(formatIssue(iss));
    }
  }
  for (const p of tenantListProblems((expanded as { tenants?: unknown }).tenants)) {
    // Not again for a block whose variable was already reported (an empty privateKeyFile).
    if (envProblems.some((e) => within(e.path, p.path))) continue;
    problems.push(`${formatPath(p.path)}: ${p.message}`);
  }
  const tenants = result.success
    ? result.data.tenants.map((t) => resolveTenant(t, result.data.defaults))
    : [];
  tenants.forEach((t, i) => {
    const problem = afterSyncProblem(t);
    if (problem) problems.push(`tenants[${i}].${problem.field}: ${problem.message}`);
  });
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  const raw = result.data;
  const config: Config = {
    ...raw,
    tenants,
    secretKey: env.FTPSYNC_SECRET_KEY || undefined,
  };
  return deepFreeze(config);
}

/** `file:line:column: not valid YAML: what was expected`, then the line with a caret under the column. */
function yamlProblem(
  file: string,
  err: { message: string; linePos?: [{ line: number; col: number }, ...unknown[]] },
) {
  // The yaml library's message is "<what> at line L, column C:\n\n<source line>\n<caret>\n".
  const [head = '', ...rest] = err.message.split('\n');
  const what = head.replace(/ at line \d+, column \d+:?$/, '').trim() || 'syntax error';
  const pos = err.linePos?.[0];
  const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
  const snippet = rest.filter((l) => l.trim() !== '').map((l) => `    ${l}`);
  return [
    `${where}: not valid YAML: ${what}${pos ? ` (line ${pos.line}, column ${pos.col})` : ''}`,
    ...snippet,
  ].join('\n');
}

/** Reads, expands and validates a YAML configuration file. */
export async function loadConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: LoadOptions = {},
): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${file}: cannot read the configuration (${(err as NodeJS.ErrnoException).code ?? err})`,
    );
  }
  const parsed = parseDocument(text, { prettyErrors: true });
  if (parsed.errors.length > 0) throw new ConfigError(parsed.errors.map((e) => yamlProblem(file, e)));
  return parseConfig(parsed.toJS(), env, opts);
}
