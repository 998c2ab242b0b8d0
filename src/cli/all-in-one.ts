// `shoal all-in-one`: the registry, a scheduler, a seed and an agent in one process, on four
// consecutive ports, for a laptop or a single-node cluster.
import type { Command } from 'commander';
import { join } from 'node:path';
import { loadServeConfig, parseListen, serveDefaults } from '../server/config.js';
import { startRegistry } from '../server/registry-process.js';
import { createLogger } from '../server/logger.js';
import { SchedulerCore } from '../p2p/scheduler/core.js';
import { createSchedulerServer } from '../p2p/scheduler/server.js';
import { preheatRoutes } from '../p2p/preheat/routes.js';
import { startSeed } from '../p2p/seed/seed.js';
import { startAgent } from '../p2p/agent/agent.js';
import { renderHostsToml } from '../p2p/agent/containerd-config.js';

export function registerAllInOne(program: Command): void {
  program
    .command('all-in-one')
    .description('Run registry, scheduler, seed and agent in one process on PORT, PORT+1, PORT+2, PORT+3 (a laptop or single-node setup).')
    .option('--listen <host:port>', 'registry address; the other roles take the next three ports', '127.0.0.1:5000')
    .option('--data <dir>', 'data directory (registry in it, p2p caches under p2p/)', serveDefaults.data)
    .option('--log-level <level>', 'log level', serveDefaults.logLevel)
    .action(async (opts) => {
      const listen = parseListen(opts.listen);
      if (listen.port === 0) {
        console.error('shoal all-in-one: pick a fixed --listen port (the other roles use the next three)');
        process.exit(2);
      }
      const log = createLogger(opts.logLevel);
      const config = loadServeConfig({ ...serveDefaults, listen: opts.listen, data: opts.data, logLevel: opts.logLevel, gcDeleteUntagged: false });
      const registry = await startRegistry(config, log.child({ role: 'registry' }));
      const registryUrl = `http://${registry.address}`;
      const core = new SchedulerCore({ registryUrl });
      const slog = log.child({ role: 'scheduler' });
      const scheduler = createSchedulerServer({ core, log: slog, registryUrl, routes: preheatRoutes(core, slog, registryUrl) });
      const schedulerUrl = await scheduler.listen(listen.port + 1, listen.host);
      const seed = await startSeed({ listen: { host: listen.host, port: listen.port + 2 }, schedulerUrl, registryUrl, dataDir: join(config.data, 'p2p', 'seed'), labels: {}, log: log.child({ role: 'seed' }) });
      const agent = await startAgent({ listen: { host: listen.host, port: listen.port + 3 }, schedulerUrl, registryUrl, dataDir: join(config.data, 'p2p', 'agent'), labels: {}, log: log.child({ role: 'agent' }) });
      log.info({ address: registry.address, registry: registryUrl, scheduler: schedulerUrl, seed: seed.address, agent: agent.address, pid: process.pid }, 'listening');
      log.flush();
      process.stderr.write(`\nshoal all-in-one: registry ${registryUrl}, agent (containerd mirror) http://${agent.address}\n` +
        `containerd hosts.toml for ${registry.address}:\n${renderHostsToml({ registry: registry.address, registryScheme: 'http', agentUrl: `http://${agent.address}` })}\n`);
      const stop = async () => {
        await agent.close().catch(() => undefined);
        await seed.close().catch(() => undefined);
        await scheduler.close().catch(() => undefined);
        await registry.close().catch(() => undefined);
        log.flush();
        process.exit(0);
      };
      process.once('SIGTERM', () => void stop());
      process.once('SIGINT', () => void stop());
    });
}
