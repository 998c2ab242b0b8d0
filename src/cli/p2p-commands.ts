// `shoal scheduler | seed | agent | preheat`: the P2P roles, each started from flags alone.
import { Option, type Command } from 'commander';
import { request } from 'undici';
import { parseDuration, parseListen } from '../server/units.js';
import { createLogger } from '../server/logger.js';
import { SchedulerCore } from '../p2p/scheduler/core.js';
import { createSchedulerServer } from '../p2p/scheduler/server.js';
import { preheatRoutes } from '../p2p/preheat/routes.js';
import { startSeed } from '../p2p/seed/seed.js';
import { SUPER_SEED_HOLD_MS } from '../p2p/peer/seed-view.js';
import type { PreheatStatus } from '../p2p/protocol.js';
import { registerAgentCommand } from './agent-command.js';
import { common, env, fail, peerFlags, peerOptions, runUntilSignalled } from './peer-flags.js';

export { parseLabels, parseRate, parseWeightBase } from './peer-flags.js';

export function registerP2pCommands(program: Command): void {
  common(
    program
      .command('scheduler')
      .description('Run the P2P scheduler: hands out parents per blob (load- and locality-aware), tracks seeds, blocklists lying peers, runs preheat jobs.')
      .option('--listen <host:port>', 'address to listen on', '127.0.0.1:4000')
      .option('--registry <url>', 'default registry for seed fetches and preheat', env('SHOAL_REGISTRY'))
      .option('--announce-interval <duration>', 'base interval between peer announces', '2s')
      .option('--max-children <n>', 'children one agent serves at most (per blob)', '20'),
  ).action(async (opts) => {
    try {
      const listen = parseListen(opts.listen);
      const log = createLogger(opts.logLevel);
      const core = new SchedulerCore({ announceIntervalMs: parseDuration(opts.announceInterval), maxChildren: Number(opts.maxChildren), ...(opts.registry ? { registryUrl: opts.registry } : {}) });
      const srv = createSchedulerServer({ core, log, clusterToken: opts.clusterToken, registryUrl: opts.registry, routes: preheatRoutes(core, log, opts.registry, opts.clusterToken) });
      const url = await srv.listen(listen.port, listen.host);
      runUntilSignalled(log, { address: new URL(url).host, url, role: 'scheduler' }, () => srv.close());
    } catch (err) {
      fail('scheduler', err);
    }
  });

  peerFlags(
    program
      .command('seed')
      .description('Run a seed peer (one per cluster / data centre): fetches each blob from the registry once, verifies it, publishes per-piece sha256 digests, serves pieces.')
      .option('--listen <host:port>', 'address to listen on', '127.0.0.1:4001')
      .option('--registry-username <user>', 'registry credentials of the seed (env SHOAL_REGISTRY_USERNAME)', env('SHOAL_REGISTRY_USERNAME'))
      .option('--registry-password <password>', 'env SHOAL_REGISTRY_PASSWORD', env('SHOAL_REGISTRY_PASSWORD'))
      .option('--super-seed-hold <duration>', `super-seeding (experimental): show children only the pieces served least, hiding a piece served more for at most this long, so that they ask for different pieces, e.g. ${SUPER_SEED_HOLD_MS}ms; 0 = show every piece`, '0'),
  ).action(async (opts) => {
    try {
      const peer = peerOptions(opts);
      const log = createLogger(opts.logLevel);
      const superSeedHoldMs = String(opts.superSeedHold).trim() === '0' ? 0 : parseDuration(opts.superSeedHold);
      const seed = await startSeed({ ...peer, registryUsername: opts.registryUsername, registryPassword: opts.registryPassword, superSeedHoldMs, log });
      runUntilSignalled(log, { address: seed.address, id: seed.node.self.id, role: 'seed' }, () => seed.close());
    } catch (err) {
      fail('seed', err);
    }
  });

  registerAgentCommand(program);

  program
    .command('preheat')
    .description('Warm seed peers (--scope seed) or every agent (--scope all) with IMAGE\'s layers before a scale-out; shows progress until done.')
    .argument('<image>', 'repo:tag or repo@digest (as stored in the registry)')
    .addOption(new Option('--scope <scope>', 'what to warm').choices(['seed', 'all']).default('seed'))
    .requiredOption('--scheduler <url>', 'scheduler base URL (env SHOAL_SCHEDULER)', env('SHOAL_SCHEDULER'))
    .option('--registry <url>', 'registry base URL (default: the scheduler\'s)')
    .option('--cluster-token <token>', 'env SHOAL_CLUSTER_TOKEN', env('SHOAL_CLUSTER_TOKEN'))
    .option('--timeout <duration>', 'give up after', '30m')
    .option('--json', 'print the final status as JSON', false)
    .action(async (image: string, opts) => {
      const headers = { 'content-type': 'application/json', ...(opts.clusterToken ? { authorization: `Bearer ${opts.clusterToken}` } : {}) };
      const base = String(opts.scheduler).replace(/\/+$/, '');
      try {
        const res = await request(`${base}/scheduler/v1/preheat`, { method: 'POST', headers, body: JSON.stringify({ image, scope: opts.scope, ...(opts.registry ? { registry: opts.registry } : {}) }) });
        const started = (await res.body.json()) as PreheatStatus & { error?: string };
        if (res.statusCode !== 202) throw new Error(started.error ?? `scheduler answered ${res.statusCode}`);
        const deadline = Date.now() + parseDuration(opts.timeout);
        let status: PreheatStatus = started;
        while (status.state === 'resolving' || status.state === 'running') {
          if (Date.now() > deadline) throw new Error(`timed out; job ${status.id} is still ${status.state}`);
          await new Promise((r) => setTimeout(r, 500));
          const r = await request(`${base}/scheduler/v1/preheat/${started.id}`, { headers });
          status = (await r.body.json()) as PreheatStatus;
          if (!opts.json) renderProgress(status);
        }
        if (!opts.json) process.stderr.write('\n');
        if (opts.json) console.log(JSON.stringify(status));
        if (status.state === 'failed') throw new Error(status.error ?? 'preheat failed');
        if (!opts.json) console.log(`preheated ${status.blobs.length} blobs of ${image} (${opts.scope}) in ${((status.finishedAt ?? Date.now()) - status.startedAt) / 1000}s`);
      } catch (err) {
        fail('preheat', err);
      }
    });
}

function renderProgress(s: PreheatStatus): void {
  const total = s.blobs.length;
  const seeded = s.blobs.filter((b) => b.seedsDone > 0).length;
  const agentsTotal = s.blobs.reduce((n, b) => n + b.agentsTotal, 0);
  const agentsDone = s.blobs.reduce((n, b) => n + Math.min(b.agentsDone, b.agentsTotal), 0);
  const frac = total === 0 ? 0 : (seeded + (agentsTotal ? agentsDone / agentsTotal : 0) * total) / (total * (agentsTotal ? 2 : 1));
  const width = 30;
  const bar = '█'.repeat(Math.round(frac * width)).padEnd(width, '░');
  const agents = agentsTotal ? `, agents ${agentsDone}/${agentsTotal}` : '';
  if (process.stderr.isTTY) process.stderr.write(`\r${bar} ${s.state}: seeded ${seeded}/${total} blobs${agents}   `);
  else process.stderr.write(`${s.state}: seeded ${seeded}/${total} blobs${agents}\n`);
}
