/**
 * JSON manifests: an array of objects (read whole, up to `MAX_JSON_ARRAY_BYTES`), or JSON Lines
 * (one object per line, streamed). A `.json` file is an array when its first non-blank character is
 * `[`, JSON Lines otherwise; `.jsonl` and `.ndjson` files are always JSON Lines.
 */
import type { Readable } from 'node:stream';
import type { MetadataConfig } from '../../config.js';
import { PermanentError } from '../../errors.js';
import { pickFields, type RowCollector } from './rows.js';
import { decodeUtf8, makeUtf8Checker } from './utf8.js';

/** Largest JSON array manifest read whole; bigger ones must be JSON Lines. */
const MAX_JSON_ARRAY_BYTES = 64 * 1024 * 1024;
/** Longest JSON Lines line; a longer one is a row error (and skipped), not the end of the file. */
const MAX_JSON_LINE = 1024 * 1024;

/** Reads a JSON manifest into `rows`. */
export async function readJson(
  input: Readable,
  opts: { fileName: string; config: MetadataConfig; rows: RowCollector; lines: boolean },
): Promise<void> {
  const { fileName, config, rows } = opts;
  const utf8 = makeUtf8Checker(fileName);
  const chunks = decodeUtf8(input, utf8);
  try {
    if (opts.lines) {
      await readLines(chunks, '', { fileName, config, rows, strictFirst: false });
      return;
    }
    let head = '';
    for (;;) {
      const next = await chunks.next();
      if (next.done) return; // nothing but blanks: no rows
      head += next.value;
      const first = /\S/.exec(head.replace(/^\uFEFF/, ''))?.[0];
      if (first === undefined) continue;
      if (first !== '[') {
        await readLines(chunks, head, { fileName, config, rows, strictFirst: true });
        return;
      }
      break;
    }
    let text = head;
    for await (const chunk of chunks) {
      if (utf8.bytes > MAX_JSON_ARRAY_BYTES) {
        throw new PermanentError(
          `${fileName}: a JSON array manifest may be at most ${MAX_JSON_ARRAY_BYTES / 1024 / 1024} MiB; write larger ones as JSON Lines (.jsonl, one object per line)`,
        );
      }
      text += chunk;
    }
    readArray(text.replace(/^\uFEFF/, ''), { fileName, config, rows });
  } finally {
    await chunks.return(undefined); // stops reading the source when we stop early
  }
}

function readArray(
  text: string,
  opts: { fileName: string; config: MetadataConfig; rows: RowCollector },
): void {
  const { fileName, config, rows } = opts;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const at = /at position (\d+)/.exec(message)?.[1];
    const where = at === undefined ? '' : ` (line ${lineAt(text, Number(at))})`;
    throw new PermanentError(`${fileName}: not valid JSON${where}: ${message}`);
  }
  if (!Array.isArray(value)) throw new PermanentError(`${fileName}: expected a JSON array of objects`);
  const lines = elementLines(text);
  value.forEach((element, i) => {
    const line = lines[i] ?? 1;
    if (isObject(element)) rows.add(line, pickFields(element, config));
    else rows.reject(line, 'expected a JSON object', JSON.stringify(element));
  });
}

async function readLines(
  chunks: AsyncIterator<string>,
  head: string,
  opts: { fileName: string; config: MetadataConfig; rows: RowCollector; strictFirst: boolean },
): Promise<void> {
  const { fileName, config, rows } = opts;
  let strict = opts.strictFirst;
  for await (const { text, line, tooLong } of splitLines(head, chunks)) {
    if (tooLong) {
      rows.reject(line, `the line is longer than ${MAX_JSON_LINE} characters`);
      continue;
    }
    const trimmed = text.replace(/^\uFEFF/, '').trim();
    if (trimmed === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (err) {
      if (strict) {
        throw new PermanentError(
          `${fileName}: neither a JSON array of objects nor JSON Lines (one object per line): line ${line}: ${(err as Error).message}`,
        );
      }
      rows.reject(line, `not valid JSON: ${(err as Error).message}`, trimmed);
      continue;
    }
    strict = false;
    if (isObject(value)) rows.add(line, pickFields(value, config));
    else rows.reject(line, 'expected a JSON object', trimmed);
  }
}

/** Lines of a text stream with their 1-based numbers; `\r\n` and `\n` end a line. */
async function* splitLines(
  head: string,
  chunks: AsyncIterator<string>,
): AsyncGenerator<{ text: string; line: number; tooLong: boolean }> {
  let buffer = head;
  let line = 1;
  let skipping = false; // inside a line already reported as too long
  for (;;) {
    let start = 0;
    for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n', start)) {
      if (nl - start > MAX_JSON_LINE) {
        if (!skipping) yield { text: '', line, tooLong: true };
      } else if (!skipping) {
        yield { text: buffer.slice(start, nl).replace(/\r$/, ''), line, tooLong: false };
      }
      skipping = false;
      line++;
      start = nl + 1;
    }
    buffer = buffer.slice(start);
    if (buffer.length > MAX_JSON_LINE) {
      if (!skipping) yield { text: '', line, tooLong: true };
      skipping = true;
      buffer = '';
    }
    const next = await chunks.next();
    if (next.done) break;
    buffer += next.value;
  }
  if (buffer !== '' && !skipping) {
    yield { text: buffer.replace(/\r$/, ''), line, tooLong: buffer.length > MAX_JSON_LINE };
  }
}

/** The line each top-level element of a (valid) JSON array starts on. */
function elementLines(text: string): number[] {
  const lines: number[] = [];
  let line = 1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let expectValue = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') continue;
    if (depth === 1 && expectValue && c !== ']') {
      lines.push(line);
      expectValue = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectValue = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectValue = true;
  }
  return lines;
}

function lineAt(text: string, position: number): number {
  let line = 1;
  for (let i = 0; i < position && i < text.length; i++) if (text[i] === '\n') line++;
  return line;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
