// Wires stores, service, HTTP app and background jobs into one running registry process.
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { FilesystemBlobStore } from '../storage/filesystem.js';
import { SqliteMetaStore } from '../meta/sqlite.js';
import { ManifestCache } from '../registry/manifest-cache.js';
import { RegistryService } from '../registry/service.js';
import { createRegistryApp, mergePolicies } from '../registry/app.js';
import { GarbageCollector } from '../gc/collector.js';
import { createMetrics } from './metrics.js';
import { createLogger, type Logger } from './logger.js';
import type { ServeConfig } from './config.js';
import { createChainRuntime, type ChainRuntime } from '../chain/runtime.js';
import type { Scanner } from '../scan/scanner.js';
import { openScanner, type ScanComponent } from '../scan/index.js';
import { createTenancy, type Tenancy } from '../auth/tenancy.js';
import { RegistryError } from '../oci/errors.js';
import { parseBasic } from '../auth/token-endpoint.js';

export interface RunningRegistry {
  server: Server;
  address: string;
  service: RegistryService;
  gc: GarbageCollector;
  log: Logger;
  /** The delivery chain (engine, store, gate), unless started with chains off. */
  chains?: ChainRuntime;
  /** Auth store, token service, limiter and audit; absent when tenancy is entirely off. */
  tenancy?: Tenancy;
  close(): Promise<void>;
}

export interface RegistryExtras {
  /** Vulnerability scanner for the chain's scan stage (src/scan). */
  scanner?: Scanner;
  /** How often the chains' scheduled full sync checks what is due (tests shorten it). */
  syncTickMs?: number;
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
  const tenancy = needsTenancy(config)
    ? await createTenancy(
        {
          auth: config.auth,
          service: config.authService,
          realm: config.authRealm,
          tokenTtlMs: config.tokenTtl,
          refreshTtlMs: config.refreshTtl,
          keyRotationMs: config.keyRotation,
          trustedProxies: config.trustedProxy,
          networkDefaultDeny: config.networkDefaultDeny,
          rateLimitIp: config.rateLimitIp,
          rateLimitPrincipal: config.rateLimitToken,
          maxConcurrent: config.maxConcurrent,
          adminPassword: process.env.SHOAL_ADMIN_PASSWORD || undefined,
        },
        config.data,
        service,
        log,
      )
    : undefined;
  // The chain's scan stage uses the embedded scanner (advisories from `shoal vulndb import`) unless one is given.
  const scan: ScanComponent | undefined = config.chains && !extras.scanner ? openScanner(config.data, service) : undefined;
  const chains = config.chains
    ? await createChainRuntime({
        service,
        dataDir: config.data,
        log,
        scanner: extras.scanner ?? scan?.scanner,
        syncTickMs: extras.syncTickMs,
        metrics: metrics.registry,
        authorize: tenancy && config.auth ? chainAdminOnly(tenancy) : undefined,
      })
    : undefined;

  const app = createRegistryApp({
    service,
    metrics,
    log,
    accessLog: config.accessLog,
    // Tenancy's chain (ACL → rate limit → authn → per-account limit → RBAC → …) first, then the vulnerability gate.
    policies: mergePolicies(tenancy?.policies, chains?.policies),
    extraRoutes: {
      ...tenancy?.extraRoutes,
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
    tenancy,
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
      await tenancy?.close();
      await service.meta.close();
    },
  };
}

/**
 * Tenancy is wired when auth, a network or rate policy is asked for, or an auth store already
 * exists (network policies set earlier keep applying). Otherwise the registry is exactly as before.
 */
function needsTenancy(config: ServeConfig): boolean {
  return (
    config.auth ||
    config.networkDefaultDeny ||
    config.maxConcurrent > 0 ||
    Object.values(config.rateLimitIp).some((v) => v > 0) ||
    Object.values(config.rateLimitToken).some((v) => v > 0) ||
    existsSync(join(config.data, 'auth.db'))
  );
}

/**
 * With token auth on, the chain admin API (/api/v1/chains) is for administrators, who present
 * HTTP Basic credentials or a bearer token, as for the tenancy admin API.
 */
function chainAdminOnly(tenancy: Tenancy) {
  return async (req: import('node:http').IncomingMessage): Promise<void> => {
    const header = req.headers.authorization;
    const basic = parseBasic(header);
    let subject: { name: string; isAdmin: boolean } | null = null;
    if (basic) subject = await tenancy.tokens.authenticate(basic.username, basic.password);
    else if (header && /^Bearer /i.test(header)) {
      const claims = tenancy.tokens.verifyAccess(header.slice(7).trim());
      if (typeof claims !== 'string' && (await tenancy.tokens.subjectActive(claims.sub, claims.kind))) subject = { name: claims.sub, isAdmin: claims.adm === true };
    }
    if (!subject) {
      throw new RegistryError('UNAUTHORIZED', "the chain API needs an administrator's credentials (HTTP Basic or a bearer token)", {
        headers: { 'WWW-Authenticate': `Basic realm="${tenancy.tokens.service} admin"` },
      });
    }
    if (!subject.isAdmin) throw new RegistryError('DENIED', `"${subject.name}" is not an administrator`);
  };
}
