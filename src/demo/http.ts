/**
 * The daemon's own HTTP endpoint (metrics, queue dashboard, status page), when this build serves one: the demo
 * enables it in the configuration when the schema has an `http` section, then asks which of the
 * usual paths answer. Nothing is printed for a daemon that does not listen.
 */
const PATHS = { metrics: '/metrics', dashboard: '/admin/queues', status: '/status' } as const;

export interface HttpEndpoint {
  name: keyof typeof PATHS;
  url: string;
  /** What it answered with the token. */
  status: number;
}

export async function probeHttp(port: number, token: string): Promise<HttpEndpoint[]> {
  const found: HttpEndpoint[] = [];
  for (const [name, path] of Object.entries(PATHS) as [HttpEndpoint['name'], string][]) {
    const url = `http://127.0.0.1:${port}${path}`;
    try {
      const res = await fetch(url, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(1_000),
        redirect: 'manual',
      });
      await res.body?.cancel();
      if (res.status !== 404) found.push({ name, url, status: res.status });
    } catch {
      // not listening (this build has no HTTP endpoint yet) or too slow: nothing to show
    }
  }
  return found;
}
