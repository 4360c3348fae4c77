/**
 * The HTTP exchange of the Vela client (vela.ts): one POST over a keep-alive undici pool, bounded in
 * time (the whole exchange) and in the bytes of the answer it reads.
 */
import { STATUS_CODES } from 'node:http';
import { type Dispatcher, Pool } from 'undici';
import { toError } from '../errors.js';

/** One answer of Vela, as far as it is read. */
export interface HttpReply {
  status: number;
  statusText: string;
  headers: Record<string, string | string[] | undefined>;
  /** The body as text, at most `maxBytes(status)` bytes of it. */
  text: string;
  /** The body was longer than the cap (the rest was not read). */
  truncated: boolean;
}

/** No complete answer within `vela.timeout`. */
export class PostTimeoutError extends Error {
  override name = 'PostTimeoutError';
  readonly code = 'ETIMEDOUT';
}

/**
 * POSTs to the allocation endpoint over a keep-alive undici `Pool` for its origin (one per check
 * function). `timeoutMs` bounds the whole exchange, answer included; the caller's `signal` aborts it
 * with its own reason; at most `maxBytes(status)` bytes of the answer are read (beyond that undici
 * closes the connection instead of reusing it). undici never follows a redirect on its own.
 *
 * A `dispatch` with a handler of its own rather than `pool.request`: the answer is a few hundred
 * bytes, and `request` wraps each one in a Readable stream, an async resource and abort-signal
 * plumbing that cost more CPU than the rest of the exchange (the upload API makes one per presign).
 */
export function makePoster(url: string) {
  const u = new URL(url);
  const pool = new Pool(u.origin, { keepAliveTimeout: 30_000 });
  const path = `${u.pathname}${u.search}`;
  return (o: {
    headers: Record<string, string>;
    body: string;
    timeoutMs: number;
    signal?: AbortSignal;
    maxBytes: (status: number) => number;
  }): Promise<HttpReply> =>
    new Promise<HttpReply>((resolve, reject) => {
      if (o.signal?.aborted) return reject(toError(o.signal.reason));
      let controller: Dispatcher.DispatchController | undefined;
      /** An abort asked for before undici started the request (it waited for a connection). */
      let early: Error | undefined;
      let settled = false;
      let status = 0;
      let headers: HttpReply['headers'] = {};
      let max = 0;
      let bytes = 0;
      const chunks: Buffer[] = [];
      const settle = (err: Error | undefined, truncated = false) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
        if (err) return reject(err);
        const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        resolve({
          status,
          statusText: STATUS_CODES[status] ?? '',
          headers,
          text: all.subarray(0, max).toString('utf8'),
          truncated,
        });
      };
      const abort = (reason: Error) => {
        settle(reason);
        if (controller) controller.abort(reason);
        else early = reason;
      };
      const timer = setTimeout(
        () => abort(new PostTimeoutError(`no complete answer within ${o.timeoutMs}ms`)),
        o.timeoutMs,
      );
      const onAbort = () => abort(toError(o.signal?.reason));
      o.signal?.addEventListener('abort', onAbort, { once: true });
      pool.dispatch(
        { path, method: 'POST', headers: o.headers, body: o.body },
        {
          // (undici takes a handler for this API only when it has onRequestStart.)
          onRequestStart(c) {
            controller = c;
            if (early) c.abort(early);
          },
          onResponseStart(_c, statusCode, responseHeaders) {
            // 1xx answers come before the final one; only the final one counts.
            status = statusCode;
            headers = responseHeaders;
            max = o.maxBytes(statusCode);
          },
          onResponseData(c, chunk) {
            if (status < 200 || settled) return;
            chunks.push(chunk);
            bytes += chunk.length;
            if (bytes > max) {
              settle(undefined, true);
              c.abort(new Error('answer longer than wanted'));
            }
          },
          onResponseEnd() {
            settle(undefined);
          },
          onResponseError(_c, err) {
            settle(err);
          },
        },
      );
    });
}
