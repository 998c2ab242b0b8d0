// The real transports over node:http (keep-alive pools per parent, explicit timeouts, the cluster
// token on every request): HttpPeerTransport for the /p2p/v1 data plane, HttpSchedulerClient for
// the scheduler's control plane.
import { coalescedChunks, HttpPool, type HttpResponse } from '../../client/http-pool.js';
import type { Digest } from '../../oci/digest.js';
import { PATHS, PEER_ID_HEADER, type AnnounceRequest, type AnnounceResponse, type BitfieldResponse, type HeartbeatRequest, type PeerInfo, type PieceManifest } from '../protocol.js';
import { PeerTransportError, type TransportErrorKind } from './errors.js';
import { MAX_PIECE_SIZE } from './manifest.js';
import type { PeerTransport, SchedulerClient } from './download-types.js';

const MAX_JSON = 4 * 1024 * 1024;

export interface HttpTransportOptions {
  clusterToken?: string;
  /** This peer's id, sent with every request (PEER_ID_HEADER): a seed serves one piece at a time per child by it. */
  peerId?: string;
  /** TCP connect timeout. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** Time to response headers (a bitfield long-poll adds its waitMs). Default 10 000 ms. */
  headersTimeoutMs?: number;
  /** Longest silence between body bytes. Default 15 000 ms. The downloader's piece timeout bounds the total. */
  bodyTimeoutMs?: number;
  /** Connections kept per parent; the downloader asks at most a few pieces of one parent at once. Default 6. */
  connectionsPerOrigin?: number;
  /** Share one connection pool among transports; otherwise one is created (and closed by close()). */
  pool?: HttpPool;
  /** Piece buffers kept for reuse after the downloader releases them (fewer big allocations, less GC). Default 8. */
  pooledBuffers?: number;
}

/** Reuses piece-sized buffers: a 512 MiB download otherwise allocates 128 fresh 4 MiB buffers for the GC to chase. */
class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly max: number) {}

  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.length === size);
    if (i >= 0) return this.free.splice(i, 1)[0]!;
    return size >= POOL_MIN ? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(size);
  }

  give(buf: Buffer): void {
    if (buf.length < POOL_MIN || buf.byteOffset !== 0 || buf.buffer.byteLength !== buf.length) return;
    if (this.free.length >= this.max || this.free.includes(buf)) return;
    this.free.push(buf);
  }
}

const POOL_MIN = 256 * 1024;

const DEFAULT_CONNECTIONS_PER_ORIGIN = 6;

function makePool(o: HttpTransportOptions): HttpPool {
  return new HttpPool({ connections: o.connectionsPerOrigin ?? DEFAULT_CONNECTIONS_PER_ORIGIN, connectTimeoutMs: o.connectTimeoutMs ?? 3000 });
}

export class HttpPeerTransport implements PeerTransport {
  private readonly http: HttpPool;
  private readonly owned: HttpPool | null;
  private readonly headers: Record<string, string>;
  private readonly headersTimeoutMs: number;
  private readonly bodyTimeoutMs: number;
  private readonly pool: BufferPool;
  private readonly connectionsPerOrigin: number;

  constructor(opts: HttpTransportOptions = {}) {
    this.connectionsPerOrigin = opts.connectionsPerOrigin ?? DEFAULT_CONNECTIONS_PER_ORIGIN;
    this.pool = new BufferPool(opts.pooledBuffers ?? 8);
    this.owned = opts.pool ? null : makePool(opts);
    this.http = opts.pool ?? this.owned!;
    this.headers = { ...(opts.clusterToken ? { authorization: `Bearer ${opts.clusterToken}` } : {}), ...(opts.peerId ? { [PEER_ID_HEADER]: opts.peerId } : {}) };
    this.headersTimeoutMs = opts.headersTimeoutMs ?? 10_000;
    this.bodyTimeoutMs = opts.bodyTimeoutMs ?? 15_000;
  }

  async bitfield(parent: PeerInfo, digest: Digest, since?: number, waitMs?: number, signal?: AbortSignal, view?: number): Promise<BitfieldResponse> {
    const q = new URLSearchParams();
    if (since !== undefined) q.set('since', String(since));
    if (waitMs !== undefined && since !== undefined) q.set('waitMs', String(Math.round(waitMs)));
    if (view !== undefined) q.set('view', String(view));
    const url = joinUrl(parent.url, PATHS.bitfield(digest)) + (q.size > 0 ? `?${q}` : '');
    const body = await this.getJson(url, (waitMs ?? 0) + this.headersTimeoutMs, signal);
    const b = body as Partial<BitfieldResponse>;
    if (typeof b?.bitfield !== 'string' || !Number.isSafeInteger(b.count) || !Number.isSafeInteger(b.total)) {
      throw new PeerTransportError('protocol', `${parent.id}: malformed bitfield response`);
    }
    return { bitfield: b.bitfield, count: b.count!, total: b.total!, ...(Number.isSafeInteger(b.view) ? { view: b.view } : {}) };
  }

  /** Reads the piece into one buffer of exactly its size; refuses a body of any other length. */
  async piece(parent: PeerInfo, digest: Digest, index: number, signal: AbortSignal, expectedSize?: number, held?: number): Promise<Buffer> {
    const url = pieceUrl(parent, digest, index, held);
    const res = await send(this.http, url, { method: 'GET', headers: this.headers, signal, headersTimeout: this.headersTimeoutMs, bodyTimeout: this.bodyTimeoutMs });
    try {
      if (res.statusCode !== 200) throw await statusError(res, `${parent.id}: piece ${index}`);
      const declared = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
      if (expectedSize !== undefined && declared !== undefined && declared !== expectedSize) {
        throw new PeerTransportError('protocol', `${parent.id}: piece ${index} is ${declared} bytes, expected ${expectedSize}`);
      }
      const size = expectedSize ?? declared;
      if (size === undefined || !Number.isSafeInteger(size) || size < 0 || size > MAX_PIECE_SIZE) {
        throw new PeerTransportError('protocol', `${parent.id}: piece ${index} has no usable length`);
      }
      const buf = this.pool.take(size);
      let off = 0;
      try {
        for await (const chunk of coalescedChunks(res.body)) {
          if (off + chunk.length > size) throw new PeerTransportError('protocol', `${parent.id}: piece ${index} is longer than ${size} bytes`);
          chunk.copy(buf, off);
          off += chunk.length;
        }
        if (off !== size) throw new PeerTransportError('protocol', `${parent.id}: piece ${index} ended after ${off} of ${size} bytes`);
      } catch (err) {
        this.pool.give(buf);
        throw err;
      }
      return buf;
    } catch (err) {
      discard(res);
      throw mapError(err, signal);
    }
  }

  /**
   * The piece body as it arrives, for writing straight to disk. The length is checked against
   * expectedSize up front (Content-Length) and while reading; errors come out as PeerTransportError.
   */
  async pieceStream(parent: PeerInfo, digest: Digest, index: number, signal: AbortSignal, expectedSize: number, held?: number): Promise<AsyncIterable<Buffer>> {
    const url = pieceUrl(parent, digest, index, held);
    const res = await send(this.http, url, { method: 'GET', headers: this.headers, signal, headersTimeout: this.headersTimeoutMs, bodyTimeout: this.bodyTimeoutMs });
    try {
      if (res.statusCode !== 200) throw await statusError(res, `${parent.id}: piece ${index}`);
      const declared = Number(res.headers['content-length']);
      if (declared !== expectedSize) throw new PeerTransportError('protocol', `${parent.id}: piece ${index} is ${res.headers['content-length'] ?? 'of unknown length'} bytes, expected ${expectedSize}`);
    } catch (err) {
      discard(res);
      throw mapError(err, signal);
    }
    return (async function* () {
      let got = 0;
      try {
        for await (const chunk of coalescedChunks(res.body)) {
          got += chunk.length;
          if (got > expectedSize) throw new PeerTransportError('protocol', `${parent.id}: piece ${index} is longer than ${expectedSize} bytes`);
          yield chunk;
        }
        if (got !== expectedSize) throw new PeerTransportError('protocol', `${parent.id}: piece ${index} ended after ${got} of ${expectedSize} bytes`);
      } catch (err) {
        throw mapError(err, signal);
      } finally {
        // Reached early when the consumer stops (return()) or fails: drop the rest of the body.
        if (got !== expectedSize || !res.body.readableEnded) discard(res);
      }
    })();
  }

  /**
   * Tells the transport how many downloads the node runs now: each one beyond the first gets one
   * more connection per parent. Every download long-polls each of its parents for up to 5 s, and
   * an agent pulling an image's layers at once from rack-mates that parent every layer has one
   * poll per layer on the same parent; with a fixed 6 the piece requests queued behind sleeping
   * polls. One download keeps exactly connectionsPerOrigin (a separate pool for polls cost the
   * single-blob bench ~10 sockets per agent and measurably more time; bench/p2p/README.md).
   * A pool shared through `opts.pool` is left alone: its owner sizes it for all its users.
   */
  setDownloads(n: number): void {
    this.owned?.setConnections(this.connectionsPerOrigin + Math.max(0, n - 1));
  }

  /** Takes back a buffer piece() returned once the caller is done with it. */
  release(buf: Buffer): void {
    this.pool.give(buf);
  }

  private async getJson(url: string, headersTimeout: number, signal?: AbortSignal): Promise<unknown> {
    const res = await send(this.http, url, { method: 'GET', headers: this.headers, signal, headersTimeout, bodyTimeout: this.bodyTimeoutMs });
    return readJson(res, url, signal);
  }

  async close(): Promise<void> {
    await this.owned?.close();
  }
}

export interface HttpSchedulerClientOptions {
  /** Scheduler base URL, e.g. http://127.0.0.1:4000 */
  url: string;
  clusterToken?: string;
  /** Whole-request timeout for control-plane calls. Default 10 000 ms. */
  timeoutMs?: number;
  pool?: HttpPool;
}

export class HttpSchedulerClient implements SchedulerClient {
  private readonly http: HttpPool;
  private readonly owned: HttpPool | null;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(private readonly opts: HttpSchedulerClientOptions) {
    this.owned = opts.pool ? null : makePool({ connectionsPerOrigin: 4 });
    this.http = opts.pool ?? this.owned!;
    this.headers = { 'content-type': 'application/json', ...(opts.clusterToken ? { authorization: `Bearer ${opts.clusterToken}` } : {}) };
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async announce(req: AnnounceRequest, signal?: AbortSignal): Promise<AnnounceResponse> {
    const body = (await this.post(PATHS.announce, req, signal)) as Partial<AnnounceResponse> | null;
    if (!body || !Array.isArray(body.parents) || typeof body.backToSource !== 'boolean' || typeof body.announceIntervalMs !== 'number') {
      throw new PeerTransportError('protocol', 'scheduler: malformed announce response');
    }
    const parents = body.parents.filter((p): p is PeerInfo => typeof p?.id === 'string' && typeof p?.url === 'string');
    const spread = typeof body.swapSpreadMs === 'number' && body.swapSpreadMs > 0 ? { swapSpreadMs: body.swapSpreadMs } : {};
    return { parents, announceIntervalMs: body.announceIntervalMs, backToSource: body.backToSource, ...spread, ...(body.pieces ? { pieces: body.pieces } : {}) };
  }

  heartbeat(req: HeartbeatRequest, signal?: AbortSignal): Promise<unknown> {
    return this.post(PATHS.heartbeat, req, signal);
  }

  publishPieces(manifest: PieceManifest, signal?: AbortSignal): Promise<unknown> {
    return this.post(PATHS.publishPieces(manifest.digest), manifest, signal);
  }

  /** POST a JSON body to a scheduler path; returns the parsed JSON reply (null for an empty body). */
  async post(path: string, payload: unknown, signal?: AbortSignal): Promise<unknown> {
    const url = joinUrl(this.opts.url, path);
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const res = await send(this.http, url, { method: 'POST', headers: this.headers, body: JSON.stringify(payload), signal: combined, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    return readJson(res, url, combined);
  }

  async close(): Promise<void> {
    await this.owned?.close();
  }
}

type RequestOptions = { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string; signal: AbortSignal | undefined; headersTimeout: number; bodyTimeout: number };

async function send(http: HttpPool, url: string, o: RequestOptions): Promise<HttpResponse> {
  try {
    return await http.request(url, o);
  } catch (err) {
    throw mapError(err, o.signal);
  }
}

async function readJson(res: HttpResponse, what: string, signal?: AbortSignal): Promise<unknown> {
  try {
    if (res.statusCode < 200 || res.statusCode >= 300) throw await statusError(res, what);
    const declared = Number(res.headers['content-length'] ?? 0);
    if (declared > MAX_JSON) throw new PeerTransportError('protocol', `${what}: reply of ${declared} bytes is too large`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_JSON) throw new PeerTransportError('protocol', `${what}: reply is too large`);
      chunks.push(chunk);
    }
    if (size === 0) return null;
    try {
      return JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
    } catch {
      throw new PeerTransportError('protocol', `${what}: reply is not JSON`);
    }
  } catch (err) {
    discard(res);
    throw mapError(err, signal);
  }
}

const statusKinds: Array<[(s: number) => boolean, TransportErrorKind]> = [
  [(s) => s === 404, 'not-found'],
  [(s) => s === 429 || s === 503, 'busy'],
  [(s) => s === 401 || s === 403 || s === 400 || s === 405, 'refused'],
];

async function statusError(res: HttpResponse, what: string): Promise<PeerTransportError> {
  let detail = '';
  try {
    const text = await res.body.text();
    detail = text.slice(0, 200);
  } catch {
    /* body unreadable: the status says enough */
  }
  const kind = statusKinds.find(([test]) => test(res.statusCode))?.[1] ?? 'unreachable';
  return new PeerTransportError(kind, `${what}: HTTP ${res.statusCode}${detail ? ` ${detail}` : ''}`, { status: res.statusCode });
}

function mapError(err: unknown, signal?: AbortSignal): PeerTransportError {
  if (err instanceof PeerTransportError) return err;
  if (signal?.aborted) return new PeerTransportError('aborted', 'request aborted', { cause: err });
  const code = (err as { code?: string })?.code ?? '';
  const message = (err as Error)?.message ?? String(err);
  if (code === 'CONNECT_TIMEOUT' || code === 'HEADERS_TIMEOUT' || code === 'BODY_TIMEOUT' || (err as Error)?.name === 'TimeoutError') {
    return new PeerTransportError('timeout', message, { cause: err });
  }
  if (code.startsWith('HPE_')) {
    return new PeerTransportError('protocol', message, { cause: err });
  }
  return new PeerTransportError('unreachable', message, { cause: err });
}

/** Drops an unread body; the error that destroying it raises on the stream is expected, not a crash. */
function discard(res: HttpResponse): void {
  res.body.on('error', () => undefined);
  res.body.destroy();
}

function joinUrl(base: string, path: string): string {
  return base.endsWith('/') ? base.slice(0, -1) + path : base + path;
}

/** A piece's URL; `held` (pieces of the task we hold) lets the parent weight its uplink toward children behind. */
function pieceUrl(parent: PeerInfo, digest: Digest, index: number, held: number | undefined): string {
  const url = joinUrl(parent.url, PATHS.piece(digest, index));
  return held !== undefined ? `${url}?held=${held}` : url;
}
