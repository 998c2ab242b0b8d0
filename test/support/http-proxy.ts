// An HTTP proxy on 127.0.0.1 in front of a registry that sees requests, not bytes: it counts how
// many are in flight at once (the replicator's concurrency limit), can hold each one for a while
// so overlaps show, and can answer a chosen request with an error a few times (retries).
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HttpProxyOptions {
  /** Held this long before forwarding, so that concurrent requests overlap. */
  holdMs?: number;
  /** Answer with `status` instead of forwarding while this returns true. */
  fail?: (req: IncomingMessage) => number | undefined;
  /** Called as each request arrives (before it is held or forwarded). */
  onRequest?: (req: IncomingMessage) => void;
}

export interface HttpProxy {
  url: string;
  /** Most requests in flight at the same time so far. */
  maxInFlight(): number;
  /** Method and path of every request, in arrival order. */
  seen: string[];
  close(): Promise<void>;
}

export async function startHttpProxy(target: string, opts: HttpProxyOptions = {}): Promise<HttpProxy> {
  const upstream = new URL(target);
  let inFlight = 0;
  let max = 0;
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    opts.onRequest?.(req);
    inFlight += 1;
    max = Math.max(max, inFlight);
    res.on('close', () => (inFlight -= 1));
    const forward = () => {
      const status = opts.fail?.(req);
      if (status) {
        req.resume();
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'injected by the test proxy' }] }));
        return;
      }
      const out = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      out.on('error', () => res.destroy());
      req.pipe(out);
    };
    if (opts.holdMs) setTimeout(forward, opts.holdMs);
    else forward();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    maxInFlight: () => max,
    seen,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
