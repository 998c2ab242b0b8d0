// Response helpers and the single place where errors become OCI error bodies.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError } from '../oci/errors.js';

export const API_VERSION_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' } as const;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | number> = {}, contentType = 'application/json'): void {
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { ...API_VERSION_HEADER, 'Content-Type': contentType, 'Content-Length': payload.length, ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : payload);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string | number | string[]> = {}): void {
  res.writeHead(status, { ...API_VERSION_HEADER, 'Content-Length': 0, ...headers });
  res.end();
}

/** Maps any error to the spec's `{"errors":[...]}` body. Unknown errors become a 500 without internals. */
export function sendError(res: ServerResponse, err: unknown): RegistryError {
  const e = err instanceof RegistryError ? err : new RegistryError('INTERNAL', 'internal server error; see the registry log for details', { cause: err });
  if (res.headersSent) {
    res.destroy();
    return e;
  }
  sendJson(res, e.status, e.toBody(), e.headers);
  if (!res.req.complete) drainThenClose(res.req);
  return e;
}

/** How much of a refused request body we read and discard so the client sees our answer. */
const LINGER_BYTES = 64 * 1024 * 1024;

/**
 * "Lingering close" (RFC 9112 9.6): closing while the client is still sending makes its TCP stack
 * reset the connection, and the client never reads the error. Read on (up to a cap) instead.
 */
function drainThenClose(req: IncomingMessage): void {
  let drained = 0;
  req.on('data', (c: Buffer) => {
    drained += c.length;
    if (drained > LINGER_BYTES) req.socket.destroy();
  });
  req.resume();
}

/** Buffers a request body up to `limit` bytes; larger bodies fail with 413 before being read whole. */
export async function readBody(req: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw new RegistryError('SIZE_INVALID', `${what} of ${declared} bytes exceeds the limit of ${limit} bytes`, { status: 413 });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new RegistryError('SIZE_INVALID', `${what} exceeds the limit of ${limit} bytes`, { status: 413 });
    }
    chunks.push(chunk as Buffer);
  }
  if (!req.complete) throw new RegistryError('SIZE_INVALID', `${what} was truncated: the client disconnected`);
  return Buffer.concat(chunks, size);
}

/** True when the request carries a body (Content-Length > 0, or chunked transfer). */
export function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}
