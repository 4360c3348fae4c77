/**
 * The shipped monitoring (deploy/): Prometheus alert rules checked and unit-tested with promtool, and
 * the Grafana dashboard. Every metric name either uses must be one the daemon really exports: read
 * from the `/metrics` of a real daemon (admin HTTP on, as test/http.test.ts starts it).
 *
 * promtool comes with Debian's `prometheus` package (.ci/run installs it). Without it the promtool
 * checks are skipped on a developer machine and fail under CI=true.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { Daemon } from '../src/main.js';
import { makeTestEnv, type TestEnv } from './support/daemon.js';
import { freePort } from './support/ports.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ALERTS = join(ROOT, 'deploy', 'prometheus', 'alerts.yml');
const ALERT_TESTS = join(ROOT, 'deploy', 'prometheus', 'alerts.test.yml');
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'ftp-sync.json');
const TOKEN = 'monitoring-test-token';

function run(file: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

async function findPromtool(): Promise<string | undefined> {
  // PROMTOOL=<path> picks one (and shows what a machine without it does: PROMTOOL=/nonexistent).
  const candidates = [process.env.PROMTOOL ?? 'promtool'];
  for (const p of candidates) {
    const r = await run(p, ['--version']);
    if (r.code === 0) return p;
  }
  return undefined;
}

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression reads: identifiers that are not functions, keywords, label
 * names (inside `{}` or the parentheses of by/without/on/ignoring), durations or Grafana variables.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/\$\{?\w+\}?/g, '') // Grafana variables
    .replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])?\b/gi, ''); // numbers and durations
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const after = stripped.slice(m.index! + word.length).trimStart();
    if (after.startsWith('(')) continue; // a function or an aggregation
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    if (/^\d/.test(word)) continue;
    names.add(word);
  }
  return [...names];
}

/** Every series name a Prometheus text exposition can have, from its `# TYPE` lines. */
function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name! + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name! + s);
  }
  return names;
}

/** Every PromQL expression of a Grafana dashboard: panel targets (rows included) and variables. */
function dashboardExprs(dashboard: unknown): string[] {
  const out: string[] = [];
  const visit = (v: unknown, key?: string) => {
    if (Array.isArray(v)) for (const x of v) visit(x);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) visit(x, k);
    else if (typeof v === 'string' && (key === 'expr' || key === 'definition')) out.push(v);
  };
  visit(dashboard);
  // label_values(metric, label): the metric is a name the daemon must export too.
  return out.map((e) => e.replace(/^label_values\(([^,]+),\s*\w+\)$/, '$1'));
}

let env: TestEnv;
let daemon: Daemon;
let exported: Set<string>;
/** The names of the `# TYPE` lines (a histogram's base name, without `_bucket`). */
let typed: Set<string>;

beforeAll(async () => {
  env = await makeTestEnv('monitoring', {
    config: { http: { enabled: true, port: await freePort(), token: TOKEN } },
  });
  daemon = await env.start();
  const res = await fetch(`${daemon.http!.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  const text = await res.text();
  exported = exportedNames(text);
  typed = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
}, 60_000);

afterAll(async () => {
  await env?.stop();
});

describe('metric names in PromQL', () => {
  it('the extraction finds metrics and nothing else', () => {
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (le, org) (rate(ftpsync_poll_duration_seconds_bucket{org=~"$org"}[$__rate_interval])))',
      ),
    ).toEqual(['ftpsync_poll_duration_seconds_bucket']);
    expect(
      metricNames('max by (org) (a_total) == 0 and on (org) b{state="x y"} offset 5m > 1e3 or vector(0)'),
    ).toEqual(['a_total', 'b']);
  });

  it('the daemon exports the metrics the README names', () => {
    for (const name of [
      'ftpsync_tenant_healthy',
      'ftpsync_queue_jobs',
      'ftpsync_poll_duration_seconds_bucket',
    ]) {
      expect(exported).toContain(name);
    }
  });
});

describe('Prometheus alert rules (deploy/prometheus/alerts.yml)', () => {
  it('use only metrics the daemon exports', async () => {
    const doc = parseYaml(await readFile(ALERTS, 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const rules = doc.groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThanOrEqual(5);
    const unknown = rules.flatMap((r) =>
      metricNames(r.expr)
        .filter((n) => !exported.has(n))
        .map((n) => `${r.alert}: ${n}`),
    );
    expect(unknown).toEqual([]);
  });

  it('match the README alert table (each expression of the table is alerted on)', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const alerts = await readFile(ALERTS, 'utf8');
    const table = readme.slice(readme.indexOf('**Alerts.**'), readme.indexOf('**S3 lifecycle rule.**'));
    const metrics = new Set(
      [...table.matchAll(/`([^`]*ftpsync_[^`]*)`/g)].flatMap((m) => metricNames(m[1]!)),
    );
    expect(metrics.size).toBeGreaterThanOrEqual(4);
    for (const m of metrics) {
      expect(exported, `README alert metric ${m}`).toContain(m);
      expect(alerts, `no alert rule reads ${m}`).toContain(m);
    }
  });

  it('pass promtool check rules and promtool test rules', async (ctx) => {
    const promtool = await findPromtool();
    if (!promtool) {
      if (process.env.CI === 'true') {
        throw new Error(
          'promtool not found: install the Debian package "prometheus" (apt-get install -y --no-install-recommends prometheus; .ci/run does)',
        );
      }
      ctx.skip('promtool not installed (Debian package prometheus)');
      return;
    }
    const check = await run(promtool, ['check', 'rules', ALERTS]);
    expect(check.out).toMatch(/SUCCESS/);
    expect(check.code, check.out).toBe(0);
    const test = await run(promtool, ['test', 'rules', ALERT_TESTS]);
    expect(test.code, test.out).toBe(0);
    expect(test.out).toMatch(/SUCCESS/);
  });
});

describe('Grafana dashboard (deploy/grafana/ftp-sync.json)', () => {
  it('is valid JSON whose every query reads only metrics the daemon exports', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { title: string; panels: unknown[] };
    expect(dashboard.title).toBe('ftp-sync');
    const exprs = dashboardExprs(dashboard);
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const used = new Set(exprs.flatMap(metricNames));
    expect(used.size).toBeGreaterThanOrEqual(10);
    const unknown = exprs.flatMap((e) =>
      metricNames(e)
        .filter((n) => !exported.has(n))
        .map((n) => `${n} (in ${e})`),
    );
    expect(unknown).toEqual([]);
    // Every ftpsync_ metric the daemon exports is on the dashboard.
    const missing = [...typed].filter(
      (n) => n.startsWith('ftpsync_') && !used.has(n) && !used.has(`${n}_bucket`),
    );
    expect(missing).toEqual([]);
  });
});
