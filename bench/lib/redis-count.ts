/**
 * Counting Redis traffic of one client: a TCP proxy in front of redis-server that counts the writes
 * (TCP reads on our side) the client sends, which is what a round trip costs; and the server's own
 * per-command counters (INFO commandstats) for what was asked.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import type { Redis } from 'ioredis';

export interface RedisCounter {
  url: string;
  /** Client → server writes so far (each pipeline or command batch is one, or a few when large). */
  writes(): number;
  close(): Promise<void>;
}

export async function startRedisCounter(port: number): Promise<RedisCounter> {
  let writes = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    client.on('data', (b) => {
      writes++;
      upstream.write(b);
    });
    upstream.on('data', (b) => client.write(b));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const proxyPort = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${proxyPort}`,
    writes: () => writes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Calls per command name since the server started (INFO commandstats), `info` itself left out. */
export async function commandStats(redis: Redis): Promise<Map<string, number>> {
  const text = await redis.info('commandstats');
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] !== 'info') out.set(m[1]!, Number(m[2]));
  }
  return out;
}

export function diffStats(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out;
}
