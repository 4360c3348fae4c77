/**
 * UTF-8 checking for manifests. A manifest that is not valid UTF-8 is usually a whole file in another
 * encoding (a Windows-1252 export): its names and e-mail addresses cannot be trusted anywhere, so the
 * file is refused as a whole with a `PermanentError` naming the byte offset, rather than row by row.
 */
import { PermanentError } from '../../errors.js';

/** Raised for invalid UTF-8; `offset` is the byte offset of the first bad byte in the file. */
export class EncodingError extends PermanentError {
  override name = 'EncodingError';
  constructor(
    readonly file: string,
    readonly offset: number,
  ) {
    super(
      `${file}: not valid UTF-8 at byte ${offset}; save the file as UTF-8 (a byte order mark is allowed)`,
    );
  }
}

/**
 * Checks bytes as they stream by. `write` returns the decoded text of the chunk (without a leading
 * byte order mark); `end` checks that the file does not stop inside a character.
 */
export function makeUtf8Checker(file: string) {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let offset = 0; // bytes before the current chunk
  let tail = new Uint8Array(0); // the bytes of an unfinished character at the end of the last chunk
  return {
    get bytes() {
      return offset;
    },
    write(chunk: Uint8Array): string {
      const joined = concat(tail, chunk);
      let text: string;
      try {
        text = decoder.decode(chunk, { stream: true });
      } catch {
        throw new EncodingError(file, offset - tail.length + Math.max(0, firstInvalidUtf8(joined, false)));
      }
      tail = joined.slice(joined.length - unfinishedTail(joined));
      offset += chunk.length;
      return text;
    },
    end(): string {
      try {
        return decoder.decode();
      } catch {
        throw new EncodingError(file, offset - tail.length);
      }
    },
  };
}

/** Decodes a byte stream, checking it is UTF-8; strings from the stream are passed through. */
export async function* decodeUtf8(
  input: AsyncIterable<unknown>,
  checker: ReturnType<typeof makeUtf8Checker>,
): AsyncGenerator<string> {
  for await (const chunk of input) {
    if (typeof chunk === 'string') yield chunk;
    else yield checker.write(chunk as Uint8Array);
  }
  const rest = checker.end();
  if (rest) yield rest;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** How many bytes at the end of `bytes` start a character that is not finished yet (0–3). */
function unfinishedTail(bytes: Uint8Array): number {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const b = bytes[bytes.length - back]!;
    if ((b & 0xc0) !== 0x80) return sequenceLength(b) > back ? back : 0;
  }
  return 0;
}

function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * Offset of the first character that is not valid UTF-8 (where its first byte is), or -1. With
 * `final: false` a character cut off by the end of `bytes` is not an error (more bytes may follow).
 */
function firstInvalidUtf8(bytes: Uint8Array, final: boolean): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    const len = sequenceLength(lead);
    if (len === 0) return i;
    if (len === 1) {
      i++;
      continue;
    }
    // The second byte has a narrower range after some leads (no overlongs, no surrogates, ≤ U+10FFFF).
    const lo = lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80;
    const hi = lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k < len; k++) {
      if (i + k >= bytes.length) return final ? i : -1;
      const b = bytes[i + k]!;
      if (k === 1 ? b < lo || b > hi : (b & 0xc0) !== 0x80) return i;
    }
    i += len;
  }
  return -1;
}
