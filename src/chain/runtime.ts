// Wires the delivery chain into a registry process: store, gate index, engine with its stages,
// the push trigger, the admin API route and the pull-gate middleware.
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { RegistryService } from '../registry/service.js';
import type { Middleware } from '../registry/context.js';
import type { RouteKey } from '../registry/app.js';
import type { Scanner } from '../scan/scanner.js';
import { SqliteChainStore } from './sqlite-store.js';
import { ChainEngine } from './engine.js';
import { GateIndex, gateMiddleware, gateStage } from './gate.js';
import { preheatStage, scanStage } from './stages.js';
import { chainApi, CHAIN_API_PREFIX } from './routes.js';
import type { StageRunners } from './stage.js';
import { ReplicatorPool, replicateStage } from '../replicate/stage.js';
import { syncChain, type SyncReport } from '../replicate/sync.js';
import { LocalRegistrySource } from '../replicate/local-source.js';
import { carryLateReferrers } from '../replicate/late-referrers.js';
import type { ChainDefinition } from './model.js';
import { notifyProgress, notifyStage } from '../notify/stage.js';
import type { ChainStore } from './store.js';
import type { Registry } from 'prom-client';
import { registerChainMetrics } from './metrics.js';
import { clearance } from './clearance.js';

export interface ChainRuntimeOptions {
  service: RegistryService;
  dataDir: string;
  log: Logger;
  /** Without one the scan stage is skipped ("not available in this process") and the gate has nothing to judge. */
  scanner?: Scanner;
  maxConcurrentRuns?: number;
  /** Prometheus registry for the chain's metrics (the process's /metrics). */
  metrics?: Registry;
  authorize?: (req: IncomingMessage) => Promise<void>;
  /** How often the scheduled full sync checks which chains are due (5 s default). */
  syncTickMs?: number;
}

export interface ChainRuntime {
  engine: ChainEngine;
  store: ChainStore;
  gate: GateIndex;
  /** For AppOptions.extraRoutes. */
  routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>>;
  /** For AppOptions.policies: the vulnerability gate on manifest pulls. */
  policies: Partial<Record<RouteKey, Middleware[]>>;
  /** Resumes interrupted runs and starts listening to pushes; call once the registry listens. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function createChainRuntime(opts: ChainRuntimeOptions): Promise<ChainRuntime> {
  const store = new SqliteChainStore(join(opts.dataDir, 'chain.db'));
  const gate = await new GateIndex(store).load();
  // Replication reads this registry in-process: no token needed with auth on, no pull policy in the way.
  const source = new LocalRegistrySource(opts.service);
  const pool = new ReplicatorPool(source, opts.dataDir);
  const stages: StageRunners = {
    gate: gateStage(store, gate),
    replicate: replicateStage(pool),
    preheat: preheatStage(),
    notify: notifyStage(),
  };
  if (opts.scanner) stages.scan = scanStage(opts.scanner);
  const engine = new ChainEngine({ store, stages, log: opts.log.child({ component: 'chain' }), maxConcurrentRuns: opts.maxConcurrentRuns });
  notifyProgress(engine, store, opts.log);
  const chainLog = opts.log.child({ component: 'chain' });
  const sync = (chain: ChainDefinition): Promise<SyncReport> =>
    syncChain(chain, { source, pool, clear: (repo, digest, tag) => clearance({ store, engine, gate }, chain, repo, digest, tag), log: (m) => chainLog.info(m) });
  const lateReferrers = carryLateReferrers({ store, pool, log: chainLog });
  const scheduler = new SyncScheduler(store, sync, chainLog, opts.syncTickMs);
  const api = chainApi({ store, engine, gate, service: opts.service, authorize: opts.authorize, sync });
  const metrics = opts.metrics ? registerChainMetrics(opts.metrics, engine) : undefined;
  const pullGate = gateMiddleware(opts.service, gate, () => metrics?.gateRefusals.inc());
  return {
    engine,
    store,
    gate,
    routes: { [CHAIN_API_PREFIX]: api, [`${CHAIN_API_PREFIX}/`]: api },
    policies: { 'manifest GET': [pullGate], 'manifest HEAD': [pullGate] },
    async start() {
      opts.service.events.on('manifest.pushed', engine.onManifestPushed);
      opts.service.events.on('manifest.pushed', lateReferrers.onPushed);
      await engine.start();
      scheduler.start();
    },
    async close() {
      scheduler.stop();
      opts.service.events.off('manifest.pushed', engine.onManifestPushed);
      opts.service.events.off('manifest.pushed', lateReferrers.onPushed);
      await lateReferrers.drain();
      await engine.stop();
      await store.close();
    },
  };
}

/** Runs each chain's full sync when its replicate.syncIntervalMs is due; one sync at a time. */
export class SyncScheduler {
  private timer: NodeJS.Timeout | undefined;
  private readonly lastRun = new Map<string, number>();
  private busy = false;

  constructor(
    private readonly store: ChainStore,
    private readonly sync: (chain: ChainDefinition) => Promise<SyncReport>,
    private readonly log: Logger,
    private readonly tickMs: number = 5_000,
  ) {}

  start(): void {
    const started = Date.now();
    this.timer = setInterval(() => void this.tick(started), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async tick(started: number): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const chain of await this.store.listChains()) {
        const every = chain.replicate.syncIntervalMs;
        if (!chain.replicate.enabled || every <= 0 || chain.replicate.targets.length === 0) continue;
        if (Date.now() - (this.lastRun.get(chain.name) ?? started) < every) continue;
        this.lastRun.set(chain.name, Date.now());
        const report = await this.sync(chain).catch((err: Error) => ({ error: err.message }));
        this.log.info({ sync: report }, `scheduled sync of chain ${chain.name}`);
      }
    } finally {
      this.busy = false;
    }
  }
}
