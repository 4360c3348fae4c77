/**
 * One HTTP POST over node:http(s) with a keep-alive agent, a deadline for the whole exchange and a
 * cap on the answer's size. Used for the Vela allocation check, once per recording: `fetch` costs
 * about 0.7 ms of CPU per call here (web streams, abort signals), this about a quarter of that.
 * Redirects are never followed.
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
  STATUS_CODES,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export interface HttpReply {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  /** The body as text, at most `maxBytes(status)` bytes of it. */
  text: string;
  /** The body was longer than the cap (the rest was not read). */
  truncated: boolean;
}

export interface PostOptions {
  headers: Record<string, string>;
  body: string;
  /** The whole exchange, answer included; then it fails with a `PostTimeoutError`. */
  timeoutMs: number;
  /** The caller's abort: the request is destroyed with the signal's reason. */
  signal?: AbortSignal;
  /** How much of an answer with this status to read. */
  maxBytes: (status: number) => number;
}

export class PostTimeoutError extends Error {
  override name = 'PostTimeoutError';
  readonly code = 'ETIMEDOUT';
}

export type Post = (opts: PostOptions) => Promise<HttpReply>;

/** A poster for one URL, with its own keep-alive agent. */
export function makePost(url: string): Post {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  const send = tls ? httpsRequest : httpRequest;
  const agent = tls ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const target = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port || undefined,
    path: `${u.pathname}${u.search}`,
    agent,
  };

  return (o) =>
    new Promise<HttpReply>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | undefined, reply?: HttpReply) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(reply!);
      };
      const req = send({
        ...target,
        method: 'POST',
        headers: { ...o.headers, 'content-length': String(Buffer.byteLength(o.body)) },
      });
      const fail = (err: Error) => {
        finish(err);
        req.destroy(err);
      };
      const timer = setTimeout(
        () => fail(new PostTimeoutError(`no complete answer within ${o.timeoutMs}ms`)),
        o.timeoutMs,
      );
      const onAbort = () => fail(o.signal!.reason instanceof Error ? o.signal!.reason : new Error('aborted'));
      if (o.signal?.aborted) return onAbort();
      o.signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => finish(err));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const max = o.maxBytes(status);
        const chunks: Buffer[] = [];
        let bytes = 0;
        let truncated = false;
        const reply = () => ({
          status,
          statusText: res.statusMessage || STATUS_CODES[status] || '',
          headers: res.headers,
          text: Buffer.concat(chunks).subarray(0, max).toString('utf8'),
          truncated,
        });
        res.on('data', (chunk: Buffer) => {
          if (truncated) return;
          chunks.push(chunk);
          bytes += chunk.length;
          if (bytes > max) {
            truncated = true;
            // The rest is not wanted: this connection cannot be reused for another request.
            res.destroy();
            finish(undefined, reply());
          }
        });
        res.on('end', () => finish(undefined, reply()));
        res.on('error', (err) => finish(err));
        res.on('close', () => finish(new Error('the connection closed before the answer ended')));
      });
      req.end(o.body);
    });
}
