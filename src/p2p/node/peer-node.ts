// What a seed and an agent share: identity, the piece store, the /p2p/v1 data plane, bandwidth
// limiters, the scheduler client with its heartbeat loop, metrics and health endpoints.
import { hostname } from 'node:os';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import { collectProcessMetrics } from '../../server/metrics.js';
import type { Locality, PeerInfo, PeerRole } from '../protocol.js';
import type { Digest } from '../../oci/digest.js';
import { DEFAULT_UPLOAD_WEIGHT_BASE, PieceStore, RateLimiter, UploadShares, createPeerRoutes, HttpPeerTransport, HttpSchedulerClient, type PeerRoutes } from '../peer/index.js';
import { uploadSlotsFor } from '../peer/server-routes.js';
import { uploadsPerChildFor } from '../peer/upload-slots.js';

export interface PeerNodeOptions {
  role: PeerRole;
  /** Base URL other peers use to reach this one (from --advertise or the listen address). */
  url: string;
  id?: string;
  labels: Locality;
  schedulerUrl: string;
  dataDir: string;
  clusterToken?: string;
  uploadBps?: number;
  /** Agents: how a capped uplink is shared by children's progress (upload-shares.ts); 1 = evenly. */
  uploadWeightBase?: number;
  downloadBps?: number;
  backToSourceBps?: number;
  /** Piece requests that may wait for a busy upload slot, and for how long (upload-slots.ts defaults). */
  uploadQueue?: number;
  uploadQueueWaitMs?: number;
  /** Window of the upload slots' even shares among blobs (task-shares.ts); 0 or unset = none. */
  uploadTaskShareMs?: number;
  /** Pieces one child may download from this peer at once; default uploadsPerChildFor(role). */
  uploadsPerChild?: number;
  /** Seeds: super-seeding's longest hold of a piece served more than others (seed-view.ts); 0 or unset = off. */
  superSeedHoldMs?: number;
  /** Disk quota for cached blobs (LRU eviction); 0 = unlimited. */
  quotaBytes?: number;
  log: Logger;
  heartbeatMs?: number;
}

export interface PeerNode {
  self: PeerInfo;
  store: PieceStore;
  routes: PeerRoutes;
  scheduler: HttpSchedulerClient;
  transport: HttpPeerTransport;
  limits: { upload: RateLimiter; download: RateLimiter; backToSource: RateLimiter };
  metrics: Registry;
  bytes: Counter<'source'>;
  log: Logger;
  /** True when the request carries the cluster token (or the cluster has none). */
  isClusterCaller(req: IncomingMessage): boolean;
  /** /healthz and /metrics; true when handled. */
  handleCommon(req: IncomingMessage, res: ServerResponse, path: string): boolean;
  /** Starts heartbeats (registration with the scheduler); `complete` lists held blobs for seeds. */
  startHeartbeats(complete?: () => string[]): void;
  close(): Promise<void>;
}

export async function createPeerNode(o: PeerNodeOptions): Promise<PeerNode> {
  const self: PeerInfo = { id: o.id ?? `${o.role}-${hostname()}-${new URL(o.url).host}`, url: o.url, role: o.role, labels: o.labels };
  if (o.uploadBps) self.uploadBps = o.uploadBps;
  const store = await PieceStore.open(o.dataDir, { quotaBytes: o.quotaBytes ?? 0 });
  const limits = {
    upload: new RateLimiter({ rate: o.uploadBps }),
    download: new RateLimiter({ rate: o.downloadBps }),
    backToSource: new RateLimiter({ rate: o.backToSourceBps }),
  };
  const metrics = new Registry();
  collectProcessMetrics(metrics, `shoal_${o.role}_`);
  const bytes = new Counter({
    name: `shoal_${o.role}_bytes_total`,
    help: 'Blob bytes by where they came from or went: peers (received from agents), seed (received from seeds), origin (from the registry), cache (served from local disk), uploaded (served to peers)',
    labelNames: ['source'],
    registers: [metrics],
  });
  const routes = createPeerRoutes({
    store,
    uploadLimiter: limits.upload,
    // Agents share their capped uplink by the children's progress (upload-shares.ts); a seed
    // shares evenly: weighting the seed too slowed the simulated 1,000-node fleet.
    ...(o.role === 'agent' && (o.uploadWeightBase ?? DEFAULT_UPLOAD_WEIGHT_BASE) < 1 ? { uploadShares: new UploadShares(limits.upload, { base: o.uploadWeightBase }) } : {}),
    // An uplink split among too many children makes every piece slow; past this many concurrent
    // uploads (and a short line) children get 503 and ask another parent (server-routes.ts says why so few).
    maxConcurrentUploads: uploadSlotsFor(o.role, o.uploadBps),
    uploadsPerChild: o.uploadsPerChild ?? uploadsPerChildFor(o.role),
    // Off unless asked for (--super-seed-hold): seed-view.ts says what it did and did not gain.
    superSeedHoldMs: o.role === 'seed' ? (o.superSeedHoldMs ?? 0) : 0,
    // Off unless asked for (--upload-task-share): task-shares.ts says where it helped and where not.
    taskShareWindowMs: o.uploadTaskShareMs ?? 0,
    uploadQueue: o.uploadQueue,
    uploadQueueWaitMs: o.uploadQueueWaitMs,
    clusterToken: o.clusterToken,
    onBytesServed: (n) => bytes.inc({ source: 'uploaded' }, n),
    onError: (err, req) => o.log.warn({ err, path: req.url }, 'peer request failed'),
  });
  new Gauge({
    name: `shoal_${o.role}_cache_bytes`,
    help: 'Bytes of blobs held on local disk',
    registers: [metrics],
    collect() {
      this.set(store.usedBytes());
    },
  });
  const scheduler = new HttpSchedulerClient({ url: o.schedulerUrl, clusterToken: o.clusterToken });
  const transport = new HttpPeerTransport({ clusterToken: o.clusterToken, peerId: self.id });
  const tokenHash = o.clusterToken ? createHash('sha256').update(`Bearer ${o.clusterToken}`).digest() : null;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let lastHeartbeatError = '';

  return {
    self,
    store,
    routes,
    scheduler,
    transport,
    limits,
    metrics,
    bytes,
    log: o.log,
    isClusterCaller(req) {
      if (!tokenHash) return true;
      const got = createHash('sha256').update(String(req.headers.authorization ?? '')).digest();
      return timingSafeEqual(got, tokenHash);
    },
    handleCommon(req, res, path) {
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok\n');
        return true;
      }
      if (path === '/metrics') {
        void metrics.metrics().then((body) => {
          res.writeHead(200, { 'content-type': metrics.contentType });
          res.end(body);
        });
        return true;
      }
      return false;
    },
    startHeartbeats(complete) {
      const beat = async () => {
        try {
          await scheduler.heartbeat({ peer: self, uploading: routes.stats.activeUploads, ...(complete ? { completeTasks: complete() as Digest[] } : {}) });
          if (lastHeartbeatError) o.log.info({ scheduler: o.schedulerUrl }, 'scheduler reachable again');
          lastHeartbeatError = '';
        } catch (err) {
          const msg = (err as Error).message;
          if (msg !== lastHeartbeatError) o.log.warn({ scheduler: o.schedulerUrl, err: msg }, 'heartbeat to scheduler failed; P2P unavailable, pulls fall back to the registry');
          lastHeartbeatError = msg;
        }
        heartbeatTimer = setTimeout(beat, o.heartbeatMs ?? 2000);
        heartbeatTimer.unref();
      };
      void beat();
    },
    async close() {
      if (heartbeatTimer) clearTimeout(heartbeatTimer);
      routes.close();
      await transport.close();
      await store.close();
    },
  };
}

/** Advertised URL: --advertise when given, else the listen address (0.0.0.0 needs --advertise). */
export function advertisedUrl(listen: { host: string; port: number }, advertise?: string): string {
  if (advertise) return advertise.replace(/\/+$/, '');
  if (listen.host === '0.0.0.0' || listen.host === '::') throw new Error('listening on all interfaces: pass --advertise http://<reachable address>:<port>');
  return `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
}
