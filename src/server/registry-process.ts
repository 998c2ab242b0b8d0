// Wires stores, service, HTTP app and background jobs into one running registry process.
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { FilesystemBlobStore } from '../storage/filesystem.js';
import { SqliteMetaStore } from '../meta/sqlite.js';
import { ManifestCache } from '../registry/manifest-cache.js';
import { RegistryService } from '../registry/service.js';
import { createRegistryApp } from '../registry/app.js';
import { GarbageCollector } from '../gc/collector.js';
import { createMetrics } from './metrics.js';
import { createLogger, type Logger } from './logger.js';
import type { ServeConfig } from './config.js';
import { createChainRuntime, type ChainRuntime } from '../chain/runtime.js';
import type { Scanner } from '../scan/scanner.js';
import { openScanner, type ScanComponent } from '../scan/index.js';

export interface RunningRegistry {
  server: Server;
  address: string;
  service: RegistryService;
  gc: GarbageCollector;
  log: Logger;
  /** The delivery chain (engine, store, gate), unless started with chains off. */
  chains?: ChainRuntime;
  close(): Promise<void>;
}

export interface RegistryExtras {
  /** Vulnerability scanner for the chain's scan stage (src/scan). */
  scanner?: Scanner;
}

export async function openStores(config: Pick<ServeConfig, 'data' | 'maxManifestSize' | 'maxBlobSize' | 'manifestCacheSize' | 'manifestCacheTtl' | 'gcGrace'>) {
  const blobs = await new FilesystemBlobStore(join(config.data, 'storage')).init();
  const meta = new SqliteMetaStore(join(config.data, 'meta.db'));
  const cache = new ManifestCache({ maxBytes: config.manifestCacheSize, ttlMs: config.manifestCacheTtl });
  return new RegistryService({
    blobs,
    meta,
    cache,
    limits: { maxManifestBytes: config.maxManifestSize, maxBlobBytes: config.maxBlobSize, gcGraceMs: config.gcGrace },
  });
}

export async function startRegistry(config: ServeConfig, log: Logger = createLogger(config.logLevel), extras: RegistryExtras = {}): Promise<RunningRegistry> {
  const service = await openStores(config);
  const metrics = createMetrics();
  const gc = new GarbageCollector(service, log);
  let selfUrl = '';
  // The chain's scan stage uses the embedded scanner (advisories from `shoal vulndb import`) unless one is given.
  const scan: ScanComponent | undefined = config.chains && !extras.scanner ? openScanner(config.data, service) : undefined;
  const chains = config.chains
    ? await createChainRuntime({ service, dataDir: config.data, log, selfUrl: () => selfUrl, scanner: extras.scanner ?? scan?.scanner })
    : undefined;

  const app = createRegistryApp({
    service,
    metrics,
    log,
    accessLog: config.accessLog,
    policies: { ...chains?.policies },
    extraRoutes: {
      ...chains?.routes,
      '/healthz': (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok\n');
      },
      '/metrics': async (_req, res) => {
        metrics.cacheHits.set(service.cache.hits);
        metrics.cacheMisses.set(service.cache.misses);
        const body = await metrics.registry.metrics();
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
        res.end(body);
      },
    },
  });

  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout: 60_000 }, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const address = addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
  // Replication reads images back through our own API (same code path as any other source).
  const selfHost = addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address === '::' ? '[::1]' : address.slice(0, address.lastIndexOf(':'));
  selfUrl = `http://${selfHost}:${addr.port}`;
  await chains?.start();

  let gcTimer: NodeJS.Timeout | undefined;
  if (config.gcInterval > 0) {
    const schedule = () => {
      // Jitter so that replicas started together don't collect in lock-step.
      gcTimer = setTimeout(async () => {
        try {
          const r = await gc.run({ deleteUntagged: config.gcDeleteUntagged, uploadTtlMs: config.uploadTtl });
          metrics.gcRuns.inc({ mode: 'scheduled' });
          metrics.gcBlobsDeleted.inc(r.blobsDeleted);
          metrics.gcBytesReclaimed.inc(r.bytesReclaimed);
        } catch (err) {
          log.error({ err }, 'scheduled gc failed');
        }
        schedule();
      }, config.gcInterval * (0.9 + Math.random() * 0.2));
      gcTimer.unref();
    };
    schedule();
  }

  return {
    server,
    address,
    service,
    gc,
    log,
    chains,
    async close() {
      if (gcTimer) clearTimeout(gcTimer);
      await chains?.close();
      scan?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // In-flight requests get a while to finish; then we cut them.
        setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, 10_000).unref();
      });
      await service.meta.close();
    },
  };
}
