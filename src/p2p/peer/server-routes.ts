// The /p2p/v1 data plane every peer serves (protocol.ts): its bitfield per task, long-polled, and
// raw piece bytes streamed from disk under an upload bandwidth cap. Mounted by the seed's and
// the agent's HTTP servers: `if (peer.handlePeerRequest(req, res)) return;`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import { EventEmitter, setMaxListeners } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { isDigest, type Digest } from '../../oci/digest.js';
import { PEER_ID_HEADER, type BitfieldResponse } from '../protocol.js';
import { isPeerError } from './errors.js';
import type { PieceStore } from './piece-store.js';
import type { PieceTask } from './piece-task.js';
import { UploadSlots } from './upload-slots.js';
import { pace, type ByteLimiter } from './rate-limiter.js';
import type { UploadShares } from './upload-shares.js';
import { SeedView, VIEW_COALESCE_MS } from './seed-view.js';

const PREFIX = '/p2p/v1/';
const pathPattern = /^\/p2p\/v1\/tasks\/([^/]+)\/(bitfield|pieces\/(\d{1,9}))$/;

/**
 * Upload slots of a peer server: pieces served at once; past that, a request waits briefly in a
 * short line (upload-slots.ts), then children get 503 "busy" and ask another parent (they back
 * off). Few slots keep each upload fast, so a piece a peer just received reaches its children a
 * piece-time later (BitTorrent unchokes 4): one slot per
 * 16 MiB/s of uplink when it is known (1 Gbit/s: 8), at least 2; agents at most 8 (8 when
 * unknown), seeds, with fat uplinks and many children, up to 64 (32 when unknown).
 */
export function uploadSlotsFor(role: 'seed' | 'agent', uploadBps?: number): number {
  const max = role === 'seed' ? 64 : 8;
  if (!uploadBps || uploadBps <= 0) return role === 'seed' ? 32 : 8;
  return Math.min(max, Math.max(2, Math.ceil(uploadBps / (16 * 1024 * 1024))));
}

export interface PeerRoutesOptions {
  store: PieceStore;
  /** Upload bandwidth cap shared by every piece this peer serves. */
  uploadLimiter?: ByteLimiter;
  /**
   * When set, pieces are paced through it instead of uploadLimiter: the cap is shared by the
   * children's progress (`?held=N` on the request), those furthest behind getting more.
   */
  uploadShares?: UploadShares;
  /** When set, requests must carry `Authorization: Bearer <token>` (compared in constant time). */
  clusterToken?: string;
  /** Cap on a bitfield long-poll's waitMs. Default 10 s. */
  maxWaitMs?: number;
  /** Pieces streamed at once; more wait briefly in line (below), then get 503 + Retry-After so the child tries another parent. Default 8. */
  maxConcurrentUploads?: number;
  /** Requests that may wait for a busy slot (upload-slots.ts). Default DEFAULT_UPLOAD_QUEUE; 0 = answer busy at once. */
  uploadQueue?: number;
  /** Longest such wait. Default DEFAULT_UPLOAD_QUEUE_WAIT_MS. */
  uploadQueueWaitMs?: number;
  /** Uploads one child may hold at once (upload-slots.ts uploadsPerChildFor); its next request is busy at once. Default 0: no limit. */
  uploadsPerChild?: number;
  /** Hold each blob to an even share of the upload slots among those asked for within this many ms (task-shares.ts). Default 0: first come, first served. */
  taskShareWindowMs?: number;
  /**
   * Super-seeding (seed-view.ts): a complete blob's bitfield shows only the pieces served least, a
   * piece served more hidden for at most this many ms. Seeds set it; 0 or unset: everything held is shown.
   */
  superSeedHoldMs?: number;
  /** Extra check per request (e.g. "may this caller read this digest"); false → 403. */
  authorize?: (req: IncomingMessage, digest: Digest) => boolean | Promise<boolean>;
  /** Called with each chunk of piece bytes actually written to a socket (metrics). */
  onBytesServed?: (bytes: number, digest: Digest) => void;
  /** Called for unexpected failures (disk errors), for logging. */
  onError?: (err: unknown, req: IncomingMessage) => void;
}

export interface PeerRouteStats {
  bitfieldRequests: number;
  pieceRequests: number;
  piecesServed: number;
  bytesServed: number;
  busyRejections: number;
  activeUploads: number;
  activeLongPolls: number;
}

export interface PeerRoutes {
  /** Handles /p2p/v1/* (answering asynchronously) and returns true; returns false for any other path. */
  handlePeerRequest(req: IncomingMessage, res: ServerResponse): boolean;
  readonly stats: Readonly<PeerRouteStats>;
  /** Answers pending long-polls now (call before server.close() so shutdown does not wait for them). */
  close(): void;
}

export function createPeerRoutes(opts: PeerRoutesOptions): PeerRoutes {
  const { store } = opts;
  const maxWaitMs = opts.maxWaitMs ?? 10_000;
  const slots = new UploadSlots({ slots: opts.maxConcurrentUploads ?? uploadSlotsFor('agent'), queueLength: opts.uploadQueue, queueWaitMs: opts.uploadQueueWaitMs, taskShareWindowMs: opts.taskShareWindowMs, perChild: opts.uploadsPerChild });
  const tokenHash = opts.clusterToken ? sha256(`Bearer ${opts.clusterToken}`) : null;
  const stats: PeerRouteStats = {
    bitfieldRequests: 0,
    pieceRequests: 0,
    piecesServed: 0,
    bytesServed: 0,
    busyRejections: 0,
    // The slots held are the uploads in progress: one count, kept by UploadSlots.
    get activeUploads() {
      return slots.inUse;
    },
    activeLongPolls: 0,
  };
  const holdMs = opts.superSeedHoldMs ?? 0;
  const views = new Map<Digest, SeedView>();
  /** Emits a digest when its view changed (waitForView listens). */
  const viewChanges = new EventEmitter();
  viewChanges.setMaxListeners(0);
  const viewOf = (task: PieceTask): SeedView | null => {
    if (holdMs <= 0 || !task.isComplete) return null;
    let v = views.get(task.digest);
    if (!v) {
      // Bounded: a seed serving many blobs forgets the views of the ones asked for longest ago.
      if (views.size >= MAX_VIEWS) views.delete(views.keys().next().value!);
      views.set(task.digest, (v = new SeedView(task.numPieces, holdMs)));
    }
    return v;
  };
  const closing = new AbortController();
  // Every waiting long poll listens to it (an agent's ~20 children poll at once): no leak to warn of.
  setMaxListeners(0, closing.signal);

  const authorized = (req: IncomingMessage): boolean => {
    if (!tokenHash) return true;
    const header = req.headers.authorization;
    // Hashing first makes the comparison constant-time whatever the lengths.
    return typeof header === 'string' && timingSafeEqual(sha256(header), tokenHash);
  };

  async function bitfield(res: ServerResponse, digest: Digest, query: URLSearchParams): Promise<void> {
    stats.bitfieldRequests++;
    const since = intParam(query.get('since'));
    // After close() nobody waits: answer at once.
    const waitMs = closing.signal.aborted ? 0 : Math.min(maxWaitMs, intParam(query.get('waitMs')) ?? 0);
    let task = await store.lookup(digest);
    if (!task && since !== undefined && waitMs > 0) task = await waitForTask(store, digest, waitMs, res, closing.signal);
    if (!task) return sendError(res, 404, 'TASK_UNKNOWN', `no task for ${digest} here`);
    const view = viewOf(task);
    if (view) {
      if (view.refresh(Date.now())) viewChanges.emit(digest);
      const known = intParam(query.get('view'));
      if (known === view.version && waitMs > 0) await waitForView(view, digest, viewChanges, waitMs, res, closing.signal, stats);
      if (res.destroyed) return;
      return sendJson(res, 200, { bitfield: view.visible.toBase64(), count: view.visible.count, total: task.numPieces, view: view.version } satisfies BitfieldResponse);
    }
    if (since !== undefined && waitMs > 0 && task.bitfield.count <= since && !task.bitfield.isComplete()) {
      await waitForNews(task, since, waitMs, res, closing.signal, stats);
    }
    if (res.destroyed) return;
    const body: BitfieldResponse = { bitfield: task.bitfield.toBase64(), count: task.bitfield.count, total: task.numPieces };
    sendJson(res, 200, body);
  }

  /** `held`: pieces of the task the child holds, when it said (weights its share of the uplink). */
  async function piece(req: IncomingMessage, res: ServerResponse, digest: Digest, index: number, held: number | undefined): Promise<void> {
    stats.pieceRequests++;
    const task = await store.lookup(digest);
    if (!task || index >= task.numPieces || !task.has(index)) return sendError(res, 404, 'PIECE_UNKNOWN', `piece ${index} of ${digest} is not held here`);
    const child = childOf(req);
    if (!(slots.tryAcquire(digest, child) || (await waitForSlot(slots, res, digest, child)))) {
      stats.busyRejections++;
      return sendError(res, 503, 'BUSY', 'too many uploads in progress', { 'Retry-After': '1' });
    }
    try {
      if (res.destroyed) return;
      // Counted as the upload starts, so the pieces in flight are hidden from the next children too.
      if (viewOf(task)?.servedAt(index, Date.now())) viewChanges.emit(digest);
      let stream;
      try {
        stream = await task.createPieceStream(index);
      } catch (err) {
        if (isPeerError(err, 'PIECE_NOT_HELD')) return sendError(res, 404, 'PIECE_UNKNOWN', (err as Error).message);
        throw err;
      }
      if (task.isComplete) store.touch(digest);
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': task.pieceLength(index), 'Cache-Control': 'no-store' });
      if (req.method === 'HEAD') {
        stream.destroy();
        res.end();
        return;
      }
      const onBytes = (n: number) => {
        stats.bytesServed += n;
        opts.onBytesServed?.(n, digest);
      };
      const share = opts.uploadShares?.openShare(held);
      try {
        await pipeline(stream, pace(share ?? opts.uploadLimiter, { onBytes }), res);
      } finally {
        share?.close();
      }
      stats.piecesServed++;
    } finally {
      slots.release(digest, child);
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q === -1 ? raw : raw.slice(0, q);
    const m = pathPattern.exec(path);
    if (!m) return sendError(res, 404, 'NOT_FOUND', 'unknown /p2p/v1 path');
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed here`, { Allow: 'GET, HEAD' });
    if (!authorized(req)) return sendError(res, 401, 'UNAUTHORIZED', 'a valid cluster token is required', { 'WWW-Authenticate': 'Bearer realm="shoal-p2p"' });
    let digest: string;
    try {
      digest = decodeURIComponent(m[1]!);
    } catch {
      return sendError(res, 400, 'DIGEST_INVALID', 'malformed percent-encoding in digest');
    }
    if (!isDigest(digest)) return sendError(res, 400, 'DIGEST_INVALID', 'invalid digest');
    if (opts.authorize && !(await opts.authorize(req, digest))) return sendError(res, 403, 'DENIED', `not allowed to read ${digest}`);
    const query = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1));
    if (m[2] === 'bitfield') return bitfield(res, digest, query);
    return piece(req, res, digest, Number(m[3]), intParam(query.get('held')));
  }

  return {
    stats,
    handlePeerRequest(req, res) {
      const url = req.url ?? '/';
      if (!url.startsWith(PREFIX)) return false;
      route(req, res).catch((err: unknown) => {
        if (res.headersSent) {
          // Mid-body failure (client gone, disk error): the child sees a short piece and retries elsewhere.
          res.destroy();
          if (!isClientGone(err)) opts.onError?.(err, req);
          return;
        }
        opts.onError?.(err, req);
        sendError(res, 500, 'INTERNAL', 'internal error');
      });
      return true;
    },
    close() {
      closing.abort();
    },
  };
}

/**
 * Who is asking, for the per-child upload limit: the peer id the child's transport sends
 * (PEER_ID_HEADER), else its address. Not authentication (the cluster token is): a child that
 * lied about its id would only get a slot it could have had by asking from another address.
 */
function childOf(req: IncomingMessage): string | undefined {
  const id = req.headers[PEER_ID_HEADER];
  if (typeof id === 'string' && id.length > 0 && id.length <= 256) return `id:${id}`;
  return req.socket.remoteAddress;
}

/** Waits in the slots' line while the child stays connected. */
async function waitForSlot(slots: UploadSlots, res: ServerResponse, task: string, child: string | undefined): Promise<boolean> {
  const gone = new AbortController();
  const onClose = () => gone.abort();
  res.once('close', onClose);
  try {
    return await slots.wait(gone.signal, task, child);
  } finally {
    res.off('close', onClose);
  }
}

/** Waits until the task holds more than `since` pieces, waitMs passes, the client leaves or the routes close. */
function waitForNews(task: PieceTask, since: number, waitMs: number, res: ServerResponse, closing: AbortSignal, stats: PeerRouteStats): Promise<void> {
  return new Promise<void>((resolve) => {
    stats.activeLongPolls++;
    const done = () => {
      clearTimeout(timer);
      task.off('piece', onPiece);
      task.off('complete', done);
      res.off('close', done);
      closing.removeEventListener('abort', done);
      stats.activeLongPolls--;
      resolve();
    };
    const onPiece = () => {
      if (task.bitfield.count > since) done();
    };
    const timer = setTimeout(done, waitMs);
    task.on('piece', onPiece);
    task.once('complete', done);
    res.once('close', done);
    closing.addEventListener('abort', done, { once: true });
  });
}

/**
 * Waits until a super-seeding view changes (answered VIEW_COALESCE_MS later), a hidden piece is
 * due to be shown, waitMs passes, the client leaves or the routes close.
 */
function waitForView(view: SeedView, digest: Digest, changes: EventEmitter, waitMs: number, res: ServerResponse, closing: AbortSignal, stats: PeerRouteStats): Promise<void> {
  return new Promise<void>((resolve) => {
    stats.activeLongPolls++;
    let coalesce: NodeJS.Timeout | undefined;
    let over = false;
    const done = () => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      clearTimeout(reveal);
      clearTimeout(coalesce);
      changes.off(digest, onChange);
      res.off('close', done);
      closing.removeEventListener('abort', done);
      stats.activeLongPolls--;
      resolve();
    };
    const onChange = () => {
      coalesce ??= setTimeout(done, VIEW_COALESCE_MS);
    };
    const timer = setTimeout(done, waitMs);
    const revealIn = view.nextRevealAt() - Date.now();
    const reveal = revealIn < waitMs ? setTimeout(() => (view.refresh(Date.now()) ? changes.emit(digest) : onChange()), Math.max(0, revealIn)) : undefined;
    changes.on(digest, onChange);
    res.once('close', done);
    closing.addEventListener('abort', done, { once: true });
  });
}

/** Super-seeding views a peer server keeps (one per blob, ~12 bytes per piece). */
const MAX_VIEWS = 4096;

/** A parent may be asked before it opened the task (it announced, the manifest is on its way). */
function waitForTask(store: PieceStore, digest: Digest, waitMs: number, res: ServerResponse, closing: AbortSignal): Promise<PieceTask | null> {
  return new Promise((resolve) => {
    const finish = (task: PieceTask | null) => {
      clearTimeout(timer);
      store.off('task', onTask);
      store.off('complete', onComplete);
      res.off('close', onGone);
      closing.removeEventListener('abort', onGone);
      resolve(task);
    };
    const onTask = (task: PieceTask) => {
      if (task.digest === digest) finish(task);
    };
    const onComplete = (d: Digest) => {
      if (d === digest) store.lookup(digest).then(finish, () => finish(null));
    };
    const onGone = () => finish(null);
    const timer = setTimeout(onGone, waitMs);
    store.on('task', onTask);
    store.on('complete', onComplete);
    res.once('close', onGone);
    closing.addEventListener('abort', onGone, { once: true });
  });
}

function intParam(v: string | null): number | undefined {
  if (v === null || !/^\d{1,12}$/.test(v)) return undefined;
  return Number(v);
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': payload.length, 'Cache-Control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : payload);
}

/** Same body shape as the registry's errors: {"errors":[{"code","message"}]}. */
function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { errors: [{ code, message }] }, headers);
}

function isClientGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'EPIPE';
}
