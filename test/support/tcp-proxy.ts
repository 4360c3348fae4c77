/**
 * A TCP relay on 127.0.0.1 in front of a server's control port, standing in for a NAT gateway or
 * firewall between ftp-sync and a far server: `cut()` drops every relayed connection at once, both
 * ways, as a gateway that forgot an idle connection does. Data connections (PASV) do not pass here.
 */
import { createServer, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Connections relayed so far. */
  readonly connections: number;
  /** Destroys every open relayed connection; returns how many there were. */
  cut(): number;
  stop(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
  const open = new Set<[Socket, Socket]>();
  let connections = 0;
  const server = createServer((client) => {
    connections++;
    const upstream = new (client.constructor as typeof Socket)();
    const pair: [Socket, Socket] = [client, upstream];
    open.add(pair);
    const end = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    upstream.connect(target.port, target.host);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('tcp proxy: no port');
  const cut = () => {
    const n = open.size;
    for (const [a, b] of [...open]) {
      a.destroy();
      b.destroy();
    }
    open.clear();
    return n;
  };
  return {
    port: address.port,
    get connections() {
      return connections;
    },
    cut,
    async stop() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
