/**
 * Reading an upload API request off node:http: the body within its size limit (413, declared or
 * chunked), the fields from the query string and a JSON, urlencoded or multipart body (400/415 naming
 * the field at fault), and zod's first issue as the 400 that names its field.
 */
import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { toError } from '../errors.js';
import { ApiError } from '../ops/uploads.js';

/** `metadata.date_of_call: …` from the first issue; the field is the issue's path. */
export function fieldError(err: z.ZodError): ApiError {
  const iss = err.issues[0]!;
  const field = iss.path.map(String).join('.') || 'body';
  if (iss.code === 'unrecognized_keys') {
    const keys = iss.keys.join(', ');
    const at = iss.path.length ? `${field}.` : '';
    return new ApiError(400, 'invalid_field', `${at}${keys}: unknown field`, {
      field: `${at}${iss.keys[0]}`,
    });
  }
  return new ApiError(400, 'invalid_field', `${field}: ${iss.message}`, { field });
}

const tooLarge = (max: number) =>
  new ApiError(413, 'body_too_large', `body: larger than ${max} bytes`, { field: 'body' });

/** A declared Content-Length over the limit is refused before anything is read. */
export function checkDeclaredLength(req: IncomingMessage, max: number): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max) throw tooLarge(max);
}

/** The body as text, at most `max` bytes (413 beyond, whether declared or chunked). */
function readBody(req: IncomingMessage, max: number): Promise<string> {
  checkDeclaredLength(req, max);
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error) => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onAborted);
      if (err) reject(err);
      else
        resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) return done(tooLarge(max));
      chunks.push(chunk);
    };
    const onEnd = () => done();
    const onError = (err: Error) => done(err);
    const onAborted = () => done(new Error('client closed the request'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onAborted);
  });
}

/** The request's fields: the query string, then the body (JSON or a form) over it. */
export async function readFields(req: IncomingMessage, query: string, maxBodyBytes: number) {
  const fields: Record<string, unknown> = query ? Object.fromEntries(new URLSearchParams(query)) : {};
  const contentType = req.headers['content-type'] ?? '';
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  const text = await readBody(req, maxBodyBytes);
  if (text.trim() !== '') {
    if (type === 'application/json' || type === '' || type.endsWith('+json')) {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new ApiError(400, 'invalid_json', `body: not JSON (${toError(err).message})`, {
          field: 'body',
        });
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new ApiError(400, 'invalid_json', 'body: expected a JSON object', { field: 'body' });
      }
      Object.assign(fields, body);
    } else if (type === 'application/x-www-form-urlencoded') {
      Object.assign(fields, Object.fromEntries(new URLSearchParams(text)));
    } else if (type === 'multipart/form-data') {
      const form = await new Request('http://x/', {
        method: 'POST',
        headers: { 'content-type': contentType },
        body: text,
      }).formData();
      for (const [k, v] of form) if (typeof v === 'string') fields[k] = v;
    } else {
      throw new ApiError(
        415,
        'unsupported_media_type',
        `content-type: expected application/json or a form, got ${JSON.stringify(type)}`,
        { field: 'content-type' },
      );
    }
  }
  // In a form or a query string, metadata is a JSON string.
  if (typeof fields.metadata === 'string') {
    try {
      fields.metadata = JSON.parse(fields.metadata);
    } catch {
      throw new ApiError(
        400,
        'invalid_json',
        'metadata: expected a JSON object such as {"email": …, "date_of_call": …}',
        { field: 'metadata' },
      );
    }
  }
  return fields;
}
