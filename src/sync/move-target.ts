/**
 * The `moveTo` template of a tenant's `afterSync: move`: where a synced file goes on the source.
 * Pure and import-free, so the configuration (validation at load) and the after-sync action (expansion
 * per file) share one definition.
 *
 * Placeholders: `{path}` the file's path below the source root (`calls/2024/a.wav`), `{name}` its
 * name (`a.wav`), `{dir}` its directory below the source root (`calls/2024`, empty at the root),
 * `{date}` the UTC day of its sync (`2024-03-05`). The result is an absolute path; repeated `/` are
 * collapsed, and a `.` or `..` segment is refused (a name from a listing must never walk the target
 * out of where the template puts it).
 */
import { makeFilter } from './walk.js';

export type AfterSyncAction = 'keep' | 'delete' | 'move';

const MOVE_PLACEHOLDERS = ['path', 'name', 'dir', 'date'] as const;

/** Why a template cannot be used, or undefined when it can. */
export function moveTemplateProblem(template: string): string | undefined {
  if (!template.startsWith('/')) return 'expected an absolute path starting with /';
  const unknown = [...template.matchAll(/\{([^{}]*)\}/g)]
    .map((m) => m[1]!)
    .filter((p) => !(MOVE_PLACEHOLDERS as readonly string[]).includes(p));
  if (unknown.length) {
    return `unknown placeholder {${unknown[0]}} (use ${MOVE_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`;
  }
  if (/[{}]/.test(template.replace(/\{(path|name|dir|date)\}/g, ''))) return 'unbalanced { or }';
  // Without the file's name every file would go to the same target, each replacing the one before.
  if (!template.includes('{path}') && !template.includes('{name}'))
    return 'expected {path} or {name} in the template (each file needs its own target)';
  if (template.split('/').some((s) => s === '..' || s === '.')) return 'a . or .. segment is not allowed';
  return undefined;
}

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * The target of `path` (below the source root, no leading `/`). Throws when the result would hold a
 * `.` or `..` segment (or is the root itself).
 */
export function expandMoveTo(template: string, path: string, syncedAt: number): string {
  const cut = path.lastIndexOf('/');
  const values: Record<string, string> = {
    path,
    name: path.slice(cut + 1),
    dir: cut < 0 ? '' : path.slice(0, cut),
    date: day(syncedAt),
  };
  const raw = template.replace(/\{(path|name|dir|date)\}/g, (_, p: string) => values[p] ?? '');
  const target = `/${raw.split('/').filter(Boolean).join('/')}`;
  const segments = target.split('/').slice(1);
  if (segments.some((s) => s === '.' || s === '..') || target === '/') {
    throw new Error(`move target ${JSON.stringify(target)} of ${JSON.stringify(path)} is not allowed`);
  }
  return target;
}

/** The directory part of an absolute target (`/a/b/c.wav` → `/a/b`; `/c.wav` → `/`). */
export const parentDir = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';

/** What the re-listing check needs of a tenant. */
export interface AfterSyncSettings {
  afterSync: AfterSyncAction;
  moveTo?: string;
  dirs: string[];
  include: string[];
  exclude: string[];
}

/** Sample files a poll could find in a watched directory, to test where the template sends them. */
const SAMPLE_NAMES = ['sample.wav', 'sample.mp3', 'sample.csv', 'sample.json'];

/**
 * Whether a moved file would be listed and synced again: its target lies in a watched directory and
 * passes the tenant's include/exclude filter. Such a tenant would upload each file a second time (a
 * new path), then move it again, forever.
 */
export function wouldResync(t: AfterSyncSettings, target: string): boolean {
  const dirs = t.dirs.map((d) => `/${d.replace(/^\/+|\/+$/g, '')}`);
  const inside = dirs.some((d) => d === '/' || target.startsWith(`${d}/`));
  return inside && makeFilter(t.include, t.exclude)(target.slice(1));
}

/**
 * A tenant's after-sync settings that cannot work: `move` without `moveTo`, or a `moveTo` that puts
 * files back where the poll finds them (decided here with sample files of each watched directory;
 * the action checks each real target again before it moves anything).
 */
export function afterSyncProblem(t: AfterSyncSettings): { field: string; message: string } | undefined {
  if (t.afterSync !== 'move') return undefined;
  if (!t.moveTo) return { field: 'moveTo', message: 'required when afterSync is move' };
  const accept = makeFilter(t.include, t.exclude);
  for (const d of t.dirs) {
    const dir = d.replace(/^\/+|\/+$/g, '');
    for (const name of SAMPLE_NAMES) {
      for (const path of [`${dir}/${name}`, `${dir}/sub/${name}`].map((p) => p.replace(/^\//, ''))) {
        if (!accept(path)) continue;
        let target: string;
        try {
          target = expandMoveTo(t.moveTo, path, 0);
        } catch {
          continue;
        }
        if (wouldResync(t, target)) {
          return {
            field: 'moveTo',
            message: `${JSON.stringify(t.moveTo)} moves /${path} to ${target}, inside the watched directories, where it would be synced again: move files outside dirs, or exclude the target (e.g. exclude: ["${target.slice(1).split('/')[0]}/**"])`,
          };
        }
      }
    }
  }
  return undefined;
}
