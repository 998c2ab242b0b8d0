// The node agent: a registry mirror for containerd/Docker on every node. Manifests and every
// other /v2/ call go to the registry with the caller's credentials; blob GETs are authorised by
// the registry (HEAD with the caller's credentials) and then served from the swarm. Whenever the
// swarm cannot deliver, the agent falls back to the registry and says so (log, metrics, /status).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { Counter, Histogram } from 'prom-client';
import { isDigest, type Digest } from '../../oci/digest.js';
import { matchRoute } from '../../registry/routes.js';
import { parseRange } from '../../registry/handlers/blobs.js';
import { pace, type PieceTask } from '../peer/index.js';
import { createPeerNode, advertisedUrl, type PeerNode } from '../node/peer-node.js';
import { closeHttp, listenHttp, readJson, sendJson } from '../node/listen.js';
import { AGENT_PREFETCH_PATH, type Locality } from '../protocol.js';
import { BlobAuthorizer } from './authorizer.js';
import { forwardedHeaders, originPool, proxyToRegistry } from './proxy.js';
import { SwarmJobs } from './swarm-jobs.js';
import { blobsToPrefetch, parsePrefetchOrder, PREFETCH_MANIFEST_LIMIT } from './layer-prefetch.js';

export interface AgentOptions {
  listen: { host: string; port: number };
  advertise?: string;
  schedulerUrl: string;
  registryUrl: string;
  dataDir: string;
  labels: Locality;
  clusterToken?: string;
  uploadBps?: number;
  /** How a capped uplink is shared by the children's progress (0.7 by default; 1 = evenly). */
  uploadWeightBase?: number;
  downloadBps?: number;
  /** Piece requests that may wait for a busy upload slot, and for how long (upload-slots.ts). */
  uploadQueue?: number;
  uploadQueueWaitMs?: number;
  /** Upload slots' even shares among blobs (task-shares.ts): window in ms; 0 or unset = none. */
  uploadTaskShareMs?: number;
  /** Pieces one child may download from this peer at once; default uploadsPerChildFor(role). */
  uploadsPerChild?: number;
  backToSourceBps?: number;
  quotaBytes?: number;
  /** How long a registry authorisation decision is reused. */
  authTtlMs?: number;
  /** How long a client waits for the swarm to start (piece manifest known) before the registry serves it. */
  swarmStartTimeoutMs?: number;
  /** Start swarm downloads of every blob of an image manifest that passes through (default true; ./layer-prefetch.ts). */
  prefetchLayers?: boolean;
  /** Fault injection for tests and chaos drills: corrupt every piece this agent serves. */
  corruptPieces?: boolean;
  log: Logger;
}

export interface RunningAgent {
  address: string;
  node: PeerNode;
  close(): Promise<void>;
}

interface Fallback {
  at: string;
  digest: string;
  repo: string;
  reason: string;
}

export async function startAgent(o: AgentOptions): Promise<RunningAgent> {
  let ready: { node: PeerNode; jobs: SwarmJobs } | undefined;
  const authorizer = new BlobAuthorizer(o.registryUrl, o.authTtlMs ?? 30_000);
  const fallbacks: Fallback[] = [];
  let fallbackCount = 0;

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (!ready) return sendJson(res, 503, { error: 'starting' });
    const { node } = ready;
    if (node.handleCommon(req, res, path)) return;
    if (o.corruptPieces && path.includes('/pieces/')) return serveCorrupt(req, res, node);
    if (node.routes.handlePeerRequest(req, res)) return;
    if (path === '/status') return sendJson(res, 200, status());
    if (req.method === 'POST' && path === AGENT_PREFETCH_PATH) return void prefetch(req, res);
    if (path.startsWith('/v2')) return void serveRegistryApi(req, res, path);
    sendJson(res, 404, { error: `no such endpoint: ${req.method} ${path}` });
  };

  const { server, port } = await listenHttp(o.listen.host, o.listen.port, handler);
  const node = await createPeerNode({
    role: 'agent',
    url: advertisedUrl({ host: o.listen.host, port }, o.advertise),
    labels: o.labels,
    schedulerUrl: o.schedulerUrl,
    dataDir: o.dataDir,
    clusterToken: o.clusterToken,
    uploadBps: o.uploadBps,
    uploadWeightBase: o.uploadWeightBase,
    uploadQueue: o.uploadQueue,
    uploadQueueWaitMs: o.uploadQueueWaitMs,
    uploadTaskShareMs: o.uploadTaskShareMs,
    uploadsPerChild: o.uploadsPerChild,
    downloadBps: o.downloadBps,
    backToSourceBps: o.backToSourceBps,
    quotaBytes: o.quotaBytes,
    log: o.log,
    heartbeatMs: 5000,
  });
  const jobs = new SwarmJobs(node, o.log);
  ready = { node, jobs };
  node.startHeartbeats(() => node.store.completeDigests());

  const fallbackCounter = new Counter({ name: 'shoal_agent_fallbacks_total', help: 'Blob requests served from the registry because the swarm could not', labelNames: ['reason'], registers: [node.metrics] });
  const blobSeconds = new Histogram({ name: 'shoal_agent_blob_request_seconds', help: 'Time to serve a blob to a client, by how', labelNames: ['via'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers: [node.metrics] });
  const prefetched = new Counter({ name: 'shoal_agent_prefetched_blobs_total', help: 'Blob downloads started because an image manifest that lists them passed through the agent', registers: [node.metrics] });
  const authDenied = new Counter({ name: 'shoal_agent_auth_denied_total', help: 'Blob requests the registry did not authorise for the caller', labelNames: ['status'], registers: [node.metrics] });

  function noteFallback(digest: string, repo: string, reason: string, err?: unknown) {
    fallbackCount++;
    fallbackCounter.inc({ reason });
    fallbacks.push({ at: new Date().toISOString(), digest, repo, reason });
    if (fallbacks.length > 50) fallbacks.shift();
    o.log.warn({ digest, repo, reason, err: err ? (err as Error).message : undefined }, 'falling back to the registry for this blob');
  }

  function status() {
    return {
      id: node.self.id,
      url: node.self.url,
      scheduler: o.schedulerUrl,
      registry: o.registryUrl,
      labels: o.labels,
      downloads: jobs.active.map((j) => ({ digest: j.digest, repo: j.repo, completedPieces: j.completed, totalPieces: j.total, runningMs: Date.now() - j.startedAt })),
      totals: { ...jobs.totals, fallbacks: fallbackCount, cachedBytes: node.store.usedBytes() },
      recentFallbacks: fallbacks.slice(-10),
      served: node.routes.stats,
    };
  }

  async function prefetch(req: IncomingMessage, res: ServerResponse) {
    if (!node.isClusterCaller(req)) return sendJson(res, 401, { error: 'cluster token required' });
    try {
      const parsed = parsePrefetchOrder(await readJson(req));
      if ('problems' in parsed) return sendJson(res, 400, { error: 'invalid prefetch request', detail: parsed.problems });
      const digest = parsed.digest;
      warm(digest, parsed.repo);
      sendJson(res, 202, { accepted: digest });
    } catch (err) {
      sendJson(res, 400, { error: (err as Error).message });
    }
  }

  async function serveRegistryApi(req: IncomingMessage, res: ServerResponse, path: string) {
    try {
      let route;
      try {
        route = matchRoute(path);
      } catch {
        route = null; // let the registry produce the proper error
      }
      if (route?.name === 'blob' && req.method === 'GET' && isDigest(route.ref)) {
        await serveBlob(req, res, route.repo, route.ref as Digest);
        return;
      }
      const prefetch = route?.name === 'manifest' && req.method === 'GET' && o.prefetchLayers !== false;
      await proxyToRegistry(req, res, o.registryUrl, {
        onBytes: (n) => node.bytes.inc({ source: 'origin' }, n),
        ...(prefetch ? { capture: { limit: PREFETCH_MANIFEST_LIMIT, onBody: (body, type) => prefetchImage(route!.repo, body, type) } } : {}),
      });
    } catch (err) {
      o.log.warn({ path, err: (err as Error).message }, 'registry request failed');
      if (!res.headersSent) sendJson(res, 502, { errors: [{ code: 'UNAVAILABLE', message: `registry ${o.registryUrl} unreachable from agent: ${(err as Error).message}` }] });
      else res.destroy();
    }
  }

  /** Starts (or joins) a background swarm download unless the blob is here; true if one runs. */
  function warm(digest: Digest, repo: string, size?: number): boolean {
    if (node.store.hasComplete(digest)) return false;
    jobs.get(digest, repo, size).result.catch(() => undefined);
    return true;
  }

  /** Swarm downloads of every blob of an image manifest the registry just served a client. */
  function prefetchImage(repo: string, body: Buffer, contentType: string | undefined) {
    let started = 0;
    for (const b of blobsToPrefetch(body, contentType)) {
      if (b.size === 0 || !warm(b.digest, repo, b.size)) continue;
      prefetched.inc();
      started++;
    }
    if (started > 0) o.log.info({ repo, blobs: started }, 'prefetching the image\'s blobs through the swarm');
  }

  async function serveBlob(req: IncomingMessage, res: ServerResponse, repo: string, digest: Digest) {
    const started = process.hrtime.bigint();
    const observe = (via: string) => blobSeconds.observe({ via }, Number(process.hrtime.bigint() - started) / 1e9);
    // Privacy: the registry decides whether this caller may read this blob.
    const auth = await authorizer.check(repo, digest, req.headers.authorization);
    if (!auth.allowed) {
      authDenied.inc({ status: String(auth.status) });
      const code = auth.status === 401 ? 'UNAUTHORIZED' : auth.status === 403 ? 'DENIED' : auth.status === 404 ? 'BLOB_UNKNOWN' : 'UNAVAILABLE';
      const body = JSON.stringify({ errors: [{ code, message: `registry refused ${repo}@${digest} for this caller (${auth.status})` }] });
      res.writeHead(auth.status, { ...auth.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const size = auth.size ?? node.store.completeSize(digest) ?? undefined;
    const range = size !== undefined ? parseRange(req.headers.range, size) : null;
    if (range === 'unsatisfiable' || size === undefined) {
      await proxyToRegistry(req, res, o.registryUrl);
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    const writeHead = () =>
      res.writeHead(range ? 206 : 200, {
        'content-type': 'application/octet-stream',
        'docker-content-digest': digest,
        'content-length': end - start + 1,
        'accept-ranges': 'bytes',
        ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
      });

    const local = await node.store.openComplete(digest, size > 0 ? { start, end } : undefined);
    if (local) {
      writeHead();
      // Counted as bytes leave the store, not after the response ends: a client that has read the
      // last byte and then reads /metrics must already see them.
      local.stream.on('data', (c: Buffer) => node.bytes.inc({ source: 'cache' }, c.length));
      await pipeline(local.stream, res);
      observe('cache');
      return;
    }

    let sent = 0;
    try {
      const job = jobs.get(digest, repo, size);
      // Never make a client wait on a swarm that cannot start: no scheduler, or no manifest in time.
      let timer: NodeJS.Timeout | undefined;
      const task: PieceTask | null | string = await Promise.race([
        job.task,
        job.unavailable,
        new Promise<string>((r) => (timer = setTimeout(() => r('no piece manifest in time'), o.swarmStartTimeoutMs ?? 30_000))),
      ]).finally(() => clearTimeout(timer));
      if (typeof task === 'string') {
        if (job.total === 0) job.abort();
        throw new Error(task);
      }
      if (!task) {
        const r = await job.result.catch((e) => ({ outcome: 'error' as const, e }));
        throw new Error(r.outcome === 'back-to-source' ? 'scheduler has no seed for this blob (back-to-source)' : 'swarm download failed before it started');
      }
      const abort = new AbortController();
      res.on('close', () => abort.abort());
      const stream = task.createReadStream({ start, end, signal: abort.signal });
      // Headers go out with the first byte: if the swarm fails before it, the registry fallback
      // below still answers with headers of its own instead of a reset connection.
      stream.on('data', (c: Buffer) => {
        if (sent === 0) writeHead();
        sent += c.length;
      });
      // A swarm failure must end the stream so the fallback below can take over; so must a
      // back-to-source answer after the manifest (the pieces will never come). Through the
      // stream's signal, not stream.destroy(): a stream waiting for a piece cannot be destroyed
      // until that piece comes (its async generator is suspended in the wait), which left the
      // client waiting, headerless, until it gave up.
      job.result.then(
        (r) => r.outcome !== 'done' && abort.abort(new Error('scheduler sent this agent back to the registry')),
        (err) => abort.abort(err),
      );
      // Not pipeline(): it would destroy the response on a swarm error, and the fallback below
      // needs the response open to continue from the registry where the swarm stopped.
      await pipeKeepOpen(stream, res);
      if (sent === 0) writeHead();
      res.end();
      observe('swarm');
    } catch (err) {
      if (res.destroyed || res.writableEnded) return;
      noteFallback(digest, repo, sent === 0 ? 'swarm-unavailable' : 'swarm-failed-midway', err);
      await resumeFromRegistry(req, res, repo, digest, start + sent, end, sent === 0 ? writeHead : undefined);
      observe('origin');
    }
  }

  /** Serves bytes [from, end] of the blob from the registry (with the caller's credentials). */
  async function resumeFromRegistry(req: IncomingMessage, res: ServerResponse, repo: string, digest: Digest, from: number, end: number, writeHead?: () => void) {
    const headers = forwardedHeaders(req);
    headers.range = `bytes=${from}-${end}`;
    const upstream = await originPool.request(`${o.registryUrl}/v2/${repo}/blobs/${digest}`, { headers, headersTimeout: 30_000, bodyTimeout: 300_000 });
    if (upstream.statusCode !== 206 && upstream.statusCode !== 200) {
      upstream.body.dump();
      if (writeHead) return sendJson(res, 502, { errors: [{ code: 'UNAVAILABLE', message: `registry answered ${upstream.statusCode} on fallback` }] });
      res.destroy();
      return;
    }
    writeHead?.();
    await pipeline(upstream.body, pace(node.limits.backToSource, { onBytes: (n) => node.bytes.inc({ source: 'origin' }, n) }), res);
  }

  function pipeKeepOpen(src: Readable, dst: ServerResponse): Promise<void> {
    return new Promise((resolve, reject) => {
      const onClose = () => reject(new Error('client went away'));
      dst.once('close', onClose);
      src.once('error', (e) => {
        src.unpipe(dst);
        dst.off('close', onClose);
        reject(e);
      });
      src.once('end', () => {
        dst.off('close', onClose);
        resolve();
      });
      src.pipe(dst, { end: false });
    });
  }

  async function serveCorrupt(req: IncomingMessage, res: ServerResponse, n: PeerNode) {
    // Serve real bytes of the right length, with every 4 KiB flipped: a lying peer.
    const m = /^\/p2p\/v1\/tasks\/([^/]+)\/pieces\/(\d+)$/.exec((req.url ?? '').split('?')[0]!);
    const task = m ? n.store.getTask(m[1] as Digest) ?? (await n.store.lookup(m[1] as Digest)) : null;
    if (!m || !task || !task.has(Number(m[2]))) return sendJson(res, 404, { error: 'piece not held' });
    const data = Buffer.from(await task.readPiece(Number(m[2])));
    for (let i = 0; i < data.length; i += 4096) data[i] = data[i]! ^ 0xff;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
    res.end(data);
  }

  return {
    address: `${o.listen.host}:${port}`,
    node,
    async close() {
      await closeHttp(server);
      await node.close();
    },
  };
}
