/**
 * The BullMQ dashboard (Bull Board) as a node:http request listener. The only file that imports
 * Bull Board and Hono: Bull Board renders through a server adapter, and Hono's is the smallest one
 * (Hono and its node bridge have no dependencies of their own). Authentication is not done here:
 * the admin server checks the token before a request reaches this listener.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { getRequestListener } from '@hono/node-server';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Queue } from 'bullmq';
import { Hono } from 'hono';

export type Listener = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function makeDashboard(basePath: string, queues: readonly Queue[], title = 'ftp-sync'): Listener {
  const serverAdapter = new HonoAdapter(serveStatic).setBasePath(basePath);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q)),
    serverAdapter,
    options: { uiConfig: { boardTitle: title } },
  });
  const app = new Hono().route(basePath, serverAdapter.registerPlugin());
  // Without `overrideGlobalObjects: false` the bridge replaces the process's global Request and
  // Response classes, which the rest of ftp-sync (fetch to Vela) has no reason to see changed.
  return getRequestListener(app.fetch, { overrideGlobalObjects: false });
}
