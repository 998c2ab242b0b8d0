// Pass-through to the registry for everything the swarm does not serve (manifests, tags, HEADs,
// errors) and for fallback. The caller's Authorization travels with the request, and the
// registry's answer (including 401 + WWW-Authenticate) goes back unchanged, so token auth works
// through the agent exactly as against the registry.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { HttpPool } from '../../client/http-pool.js';

const FORWARD_REQUEST_HEADERS = ['authorization', 'accept', 'range', 'if-none-match', 'user-agent', 'content-type', 'content-length'];
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer']);

/** Connections to the registry, shared by the proxy, the authorizer and fallbacks. */
export const originPool = new HttpPool({ connections: 128, connectTimeoutMs: 10_000 });

/** containerd adds `?ns=<registry host>` when talking to a mirror; the registry must not see it. */
export function stripMirrorQuery(rawUrl: string): string {
  const q = rawUrl.indexOf('?');
  if (q === -1) return rawUrl;
  const params = new URLSearchParams(rawUrl.slice(q + 1));
  params.delete('ns');
  const rest = params.toString();
  return rest ? `${rawUrl.slice(0, q)}?${rest}` : rawUrl.slice(0, q);
}

export function forwardedHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of FORWARD_REQUEST_HEADERS) {
    const v = req.headers[h];
    if (typeof v === 'string') out[h] = v;
  }
  return out;
}

/** Streams the request to the registry and its answer back; returns the registry's status. */
export async function proxyToRegistry(
  req: IncomingMessage,
  res: ServerResponse,
  registry: string,
  opts: {
    pool?: HttpPool;
    onBytes?: (n: number) => void;
    /** A copy of a 200 body of at most `limit` bytes, after it was sent on (the agent reads manifests). */
    capture?: { limit: number; onBody(body: Buffer, contentType: string | undefined): void };
  } = {},
): Promise<number> {
  const upstream = await (opts.pool ?? originPool).request(`${registry}${stripMirrorQuery(req.url ?? '/')}`, {
    method: req.method ?? 'GET',
    headers: forwardedHeaders(req),
    body: req.method === 'GET' || req.method === 'HEAD' ? undefined : req,
    headersTimeout: 30_000,
    bodyTimeout: 300_000,
  });
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(upstream.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
  res.writeHead(upstream.statusCode, headers);
  if (opts.onBytes) upstream.body.on('data', (c: Buffer) => opts.onBytes!(c.length));
  const capture = opts.capture;
  const declared = Number(upstream.headers['content-length'] ?? NaN);
  const chunks: Buffer[] | null = capture && upstream.statusCode === 200 && declared <= capture.limit ? [] : null;
  if (chunks) upstream.body.on('data', (c: Buffer) => chunks.push(c));
  await pipeline(upstream.body, res);
  if (chunks && capture) {
    const type = upstream.headers['content-type'];
    capture.onBody(Buffer.concat(chunks), Array.isArray(type) ? type[0] : type);
  }
  return upstream.statusCode;
}
