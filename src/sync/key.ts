/**
 * S3 keys. Invariant 4: a key can never leave its tenant's prefix. The path part is kept as the
 * server spelled it (so two names that differ only in Unicode normalisation stay two objects), but
 * any segment that is, or normalises to, `.` or `..`, and any control or bidi-override character,
 * is refused.
 */
import { PermanentError } from '../errors.js';

const MAX_KEY_BYTES = 1024;
// C0/C1 controls and DEL; bidi embedding/override/isolate marks that disguise a name.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/** True when a name holds a control or bidi character: it can never become a key. */
export const hasUnsafeChars = (name: string) => UNSAFE_CHARS.test(name);

/**
 * Turns a listing path into the path part of a key: `/` separated, no leading `/`, no empty,
 * `.` or `..` segments. A `\` becomes `%5C` so no consumer can read it as a separator.
 */
export function safeRelativePath(path: string): string {
  if (UNSAFE_CHARS.test(path)) {
    throw new PermanentError(`unsafe path ${JSON.stringify(path)}: contains a control or bidi character`);
  }
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.length === 0) throw new PermanentError(`unsafe path ${JSON.stringify(path)}: empty`);
  for (const s of segments) {
    const folded = s.normalize('NFKC').replace(/\\/g, '/');
    if (folded === '.' || folded === '..' || folded.split('/').some((p) => p === '.' || p === '..')) {
      throw new PermanentError(`unsafe path ${JSON.stringify(path)}: contains a "${s}" segment`);
    }
  }
  return segments.map((s) => s.replace(/\\/g, '%5C')).join('/');
}

/** The part of the template before `{path}`, with the org filled in: every key of the tenant starts with it. */
export function tenantPrefix(template: string, org: string): string {
  return template.slice(0, template.indexOf('{path}')).replaceAll('{org}', org);
}

/** The S3 key of a remote file: `keyTemplate` (default `{org}/{path}`) rendered and checked. */
export function objectKey(template: string, org: string, path: string): string {
  const prefix = tenantPrefix(template, org);
  const key = prefix + safeRelativePath(path);
  if (!key.startsWith(prefix)) throw new PermanentError(`key ${JSON.stringify(key)} escapes ${prefix}`);
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new PermanentError(
      `path ${JSON.stringify(path.slice(0, 80))}…: key longer than ${MAX_KEY_BYTES} bytes`,
    );
  }
  return key;
}
