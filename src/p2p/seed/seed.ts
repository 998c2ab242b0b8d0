// The seed peer: the per-cluster "super node". It fetches each blob from the registry once,
// verifies it against its digest, computes the sha256 of every piece and publishes that piece
// manifest to the scheduler (the authenticated control plane), then serves pieces to agents.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import { RegistryClient } from '../../client/registry-client.js';
import { isDigest, type Digest } from '../../oci/digest.js';
import { isValidRepository } from '../../oci/reference.js';
import { PATHS, type Locality, type SeedFetchRequest } from '../protocol.js';
import { pace } from '../peer/index.js';
import { createPeerNode, advertisedUrl, type PeerNode } from '../node/peer-node.js';
import { closeHttp, listenHttp, readJson, sendJson } from '../node/listen.js';

export interface SeedOptions {
  listen: { host: string; port: number };
  advertise?: string;
  schedulerUrl: string;
  registryUrl: string;
  dataDir: string;
  labels: Locality;
  clusterToken?: string;
  /** Credentials the seed uses against the registry (it reads every repository it serves). */
  registryUsername?: string;
  registryPassword?: string;
  uploadBps?: number;
  backToSourceBps?: number;
  /** Piece requests that may wait for a busy upload slot, and for how long (upload-slots.ts). */
  uploadQueue?: number;
  uploadQueueWaitMs?: number;
  /** Upload slots' even shares among blobs (task-shares.ts): window in ms; 0 or unset = none. */
  uploadTaskShareMs?: number;
  /** Pieces one child may download from this peer at once; default uploadsPerChildFor(role). */
  uploadsPerChild?: number;
  /** Super-seeding's longest hold (seed-view.ts); 0 or unset = off. */
  superSeedHoldMs?: number;
  quotaBytes?: number;
  log: Logger;
}

export interface RunningSeed {
  address: string;
  node: PeerNode;
  /** Fetches (or re-publishes) a blob; resolves when its manifest is published. */
  fetch(req: SeedFetchRequest): Promise<void>;
  close(): Promise<void>;
}

const fetchSchema = z.object({
  digest: z.string().refine(isDigest, 'not a sha256/sha512 digest'),
  repo: z.string().refine(isValidRepository, 'not a valid repository name'),
  registry: z.string().url().optional(),
});

export async function startSeed(o: SeedOptions): Promise<RunningSeed> {
  let node: PeerNode | undefined;
  const inFlight = new Map<Digest, Promise<void>>();

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (!node) return sendJson(res, 503, { error: 'starting' });
    if (node.handleCommon(req, res, path)) return;
    if (node.routes.handlePeerRequest(req, res)) return;
    if (req.method === 'POST' && path === PATHS.seedFetch) {
      if (!node.isClusterCaller(req)) return sendJson(res, 401, { error: 'cluster token required' });
      void readJson(req)
        .then((body) => {
          const parsed = fetchSchema.safeParse(body);
          if (!parsed.success) return sendJson(res, 400, { error: 'invalid fetch request', detail: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) });
          // Accept at once; the scheduler learns the outcome from the published manifest.
          void fetchBlob(parsed.data as SeedFetchRequest).catch(() => undefined);
          sendJson(res, 202, { accepted: parsed.data.digest });
        })
        .catch((err) => sendJson(res, 400, { error: (err as Error).message }));
      return;
    }
    sendJson(res, 404, { error: `no such endpoint: ${req.method} ${path}` });
  };

  const { server, port } = await listenHttp(o.listen.host, o.listen.port, handler);
  const url = advertisedUrl({ host: o.listen.host, port }, o.advertise);
  node = await createPeerNode({
    role: 'seed',
    url,
    labels: o.labels,
    schedulerUrl: o.schedulerUrl,
    dataDir: o.dataDir,
    clusterToken: o.clusterToken,
    uploadBps: o.uploadBps,
    uploadQueue: o.uploadQueue,
    uploadQueueWaitMs: o.uploadQueueWaitMs,
    uploadTaskShareMs: o.uploadTaskShareMs,
    uploadsPerChild: o.uploadsPerChild,
    superSeedHoldMs: o.superSeedHoldMs,
    backToSourceBps: o.backToSourceBps,
    quotaBytes: o.quotaBytes,
    log: o.log,
  });
  const seedNode = node;
  const held = () => [...listComplete(seedNode)];
  seedNode.startHeartbeats(held);

  const clients = new Map<string, RegistryClient>();
  const clientFor = (registry: string) => {
    let c = clients.get(registry);
    if (!c) clients.set(registry, (c = new RegistryClient(registry, { username: o.registryUsername, password: o.registryPassword, userAgent: 'shoal-seed/0.1' })));
    return c;
  };

  function fetchBlob(req: SeedFetchRequest): Promise<void> {
    const existing = inFlight.get(req.digest);
    if (existing) return existing;
    const job = (async () => {
      const started = Date.now();
      let manifest = seedNode.store.hasComplete(req.digest) ? await seedNode.store.getManifest(req.digest) : null;
      if (!manifest) {
        const registry = req.registry ?? o.registryUrl;
        const res = await clientFor(registry).getBlob(req.repo, req.digest);
        if (res.status !== 200) {
          res.body.resume();
          throw new Error(`registry ${registry} answered ${res.status} for ${req.repo}@${req.digest}`);
        }
        const size = Number(res.headers['content-length']);
        const body = res.body.pipe(pace(seedNode.limits.backToSource, { onBytes: (n) => seedNode.bytes.inc({ source: 'origin' }, n) }));
        manifest = await seedNode.store.writeCompleteBlob(req.digest, body, Number.isFinite(size) ? { expectedSize: size } : {});
        o.log.info({ digest: req.digest, repo: req.repo, bytes: manifest.size, ms: Date.now() - started, pieces: manifest.pieceDigests.length }, 'seed fetched blob from registry (back-to-source) and verified it');
      }
      // Register as holder first: the scheduler accepts manifests only from live seeds.
      await seedNode.scheduler.heartbeat({ peer: seedNode.self, completeTasks: held() as Digest[] });
      await seedNode.scheduler.publishPieces({ ...manifest, peerId: seedNode.self.id } as typeof manifest);
    })();
    inFlight.set(req.digest, job);
    job
      .catch((err) => o.log.warn({ digest: req.digest, repo: req.repo, err: (err as Error).message }, 'seed fetch failed'))
      .finally(() => inFlight.delete(req.digest));
    return job;
  }

  return {
    address: `${o.listen.host}:${port}`,
    node: seedNode,
    fetch: fetchBlob,
    async close() {
      await closeHttp(server);
      await seedNode.close();
    },
  };
}

function* listComplete(node: PeerNode): Iterable<string> {
  for (const d of node.store.completeDigests()) yield d;
}
