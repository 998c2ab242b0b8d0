// `shoal scheduler | seed | agent | preheat`: the P2P roles, each started from flags alone.
import { Command, Option } from 'commander';
import { request } from 'undici';
import { parseDuration, parseListen, parseSize } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { SchedulerCore } from '../p2p/scheduler/core.js';
import { createSchedulerServer } from '../p2p/scheduler/server.js';
import { preheatRoutes } from '../p2p/preheat/routes.js';
import { startSeed } from '../p2p/seed/seed.js';
import { startAgent } from '../p2p/agent/agent.js';
import { writeHostsToml, renderHostsToml } from '../p2p/agent/containerd-config.js';
import { DEFAULT_UPLOAD_WEIGHT_BASE } from '../p2p/peer/upload-shares.js';
import type { Locality, PreheatStatus } from '../p2p/protocol.js';

const env = (name: string) => process.env[name];

/** Bandwidth: "100Mbit", "1Gbit", "12.5MiB", "500KiB" (per second); 0 = unlimited. */
export function parseRate(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit|b|kb|kib|mb|mib|gb|gib)?(?:\/s|ps)?$/i.exec(value.trim());
  if (!m) throw new Error(`invalid rate "${value}": use e.g. 100Mbit, 1Gbit, 50MiB (per second), or 0 for unlimited`);
  const n = Number(m[1]);
  const unit = (m[2] ?? 'b').toLowerCase();
  const bits: Record<string, number> = { bit: 1 / 8, kbit: 1e3 / 8, mbit: 1e6 / 8, gbit: 1e9 / 8 };
  if (unit in bits) return Math.round(n * bits[unit]!);
  return parseSize(`${m[1]}${unit === 'b' ? '' : unit}`);
}

/** --upload-weight-base: a number in (0, 1]. */
export function parseWeightBase(value: string): number {
  const x = Number(value);
  if (!(x > 0 && x <= 1)) throw new Error(`invalid --upload-weight-base "${value}": use a number in (0, 1], e.g. 0.7; 1 shares the uplink evenly`);
  return x;
}

export function parseLabels(value: string | undefined): Locality {
  const labels: Locality = {};
  if (!value) return labels;
  for (const part of value.split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    if ((k !== 'dc' && k !== 'zone' && k !== 'rack') || !v) throw new Error(`invalid label "${part}": use dc=..,zone=..,rack=..`);
    labels[k] = v;
  }
  return labels;
}

/** --scheduler and --registry are required, checked here so `agent containerd-config` need not pass them. */
function requirePeerUrls(opts: { scheduler?: string; registry?: string }): void {
  for (const k of ['scheduler', 'registry'] as const) {
    const v = opts[k];
    if (!v) throw new Error(`--${k} <url> is required (or set SHOAL_${k.toUpperCase()})`);
    try {
      new URL(v);
    } catch {
      throw new Error(`--${k} "${v}" is not a URL; use e.g. http://127.0.0.1:${k === 'scheduler' ? 4000 : 5000}`);
    }
  }
}

function fail(prefix: string, err: unknown): never {
  console.error(`shoal ${prefix}: ${(err as Error).message}`);
  process.exit(2);
}

function onSignals(log: { info(o: object, m: string): void; flush(): void }, close: () => Promise<void>) {
  const stop = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    await close().catch(() => undefined);
    log.flush();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

const common = (cmd: Command) =>
  cmd
    .option('--cluster-token <token>', 'shared secret for the control plane and peer traffic (env SHOAL_CLUSTER_TOKEN)', env('SHOAL_CLUSTER_TOKEN'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(env('SHOAL_LOG_LEVEL') ?? 'info'));

const peerFlags = (cmd: Command) =>
  common(cmd)
    .option('--advertise <url>', 'URL other peers use to reach this one (default: http://<listen>)')
    .option('--scheduler <url>', 'scheduler base URL, e.g. http://10.0.0.2:4000 (required; env SHOAL_SCHEDULER)', env('SHOAL_SCHEDULER'))
    .option('--registry <url>', 'registry base URL, e.g. http://registry:5000 (required; env SHOAL_REGISTRY)', env('SHOAL_REGISTRY'))
    .option('--data <dir>', 'cache directory for pieces and blobs', './p2p-data')
    .option('--labels <k=v,...>', 'locality: dc=..,zone=..,rack=.. (parents in the same rack/zone/dc are preferred)', env('SHOAL_LABELS'))
    .option('--upload-limit <rate>', 'cap on bytes served to other peers, e.g. 100Mbit; 0 = none', '0')
    .option('--back-to-source-limit <rate>', 'cap on bytes fetched from the registry', '0')
    .option('--quota <size>', 'disk for cached blobs (LRU eviction), e.g. 20GiB; 0 = unlimited', '0');

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
      log.info({ address: new URL(url).host, url, role: 'scheduler', pid: process.pid }, 'listening');
      log.flush();
      onSignals(log, () => srv.close());
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
      .option('--registry-password <password>', 'env SHOAL_REGISTRY_PASSWORD', env('SHOAL_REGISTRY_PASSWORD')),
  ).action(async (opts) => {
    try {
      requirePeerUrls(opts);
      const log = createLogger(opts.logLevel);
      const seed = await startSeed({
        listen: parseListen(opts.listen),
        advertise: opts.advertise,
        schedulerUrl: opts.scheduler,
        registryUrl: opts.registry,
        dataDir: opts.data,
        labels: parseLabels(opts.labels),
        clusterToken: opts.clusterToken,
        registryUsername: opts.registryUsername,
        registryPassword: opts.registryPassword,
        uploadBps: parseRate(opts.uploadLimit),
        backToSourceBps: parseRate(opts.backToSourceLimit),
        quotaBytes: parseSize(opts.quota),
        log,
      });
      log.info({ address: seed.address, id: seed.node.self.id, role: 'seed', pid: process.pid }, 'listening');
      log.flush();
      onSignals(log, () => seed.close());
    } catch (err) {
      fail('seed', err);
    }
  });

  const agent = peerFlags(
    program
      .command('agent')
      .description('Run the node agent: a registry mirror for containerd/Docker that serves blobs through the swarm (after the registry authorises the caller) and falls back to the registry.')
      .option('--listen <host:port>', 'address to listen on', '127.0.0.1:65001')
      .option('--download-limit <rate>', 'cap on bytes received from peers', '0')
      .option('--upload-weight-base <x>', 'under --upload-limit, share the uplink by the children\'s progress: the child holding the fewest pieces gets weight 1, the next x, then x^2...; 1 = evenly', String(DEFAULT_UPLOAD_WEIGHT_BASE))
      .option('--auth-ttl <duration>', 'how long a registry authorisation decision is reused', '30s')
      .option('--swarm-start-timeout <duration>', 'a client waits this long for the swarm to start before the registry serves it', '30s')
      .option('--no-prefetch-layers', "don't start swarm downloads of all of an image's layers when its manifest passes through (containerd fetches 3 at a time)")
      .addOption(new Option('--fault-corrupt-pieces', 'chaos testing: corrupt every piece served to peers').hideHelp()),
  ).action(async (opts) => {
    try {
      requirePeerUrls(opts);
      const log = createLogger(opts.logLevel);
      const a = await startAgent({
        listen: parseListen(opts.listen),
        advertise: opts.advertise,
        schedulerUrl: opts.scheduler,
        registryUrl: opts.registry,
        dataDir: opts.data,
        labels: parseLabels(opts.labels),
        clusterToken: opts.clusterToken,
        uploadBps: parseRate(opts.uploadLimit),
        uploadWeightBase: parseWeightBase(opts.uploadWeightBase),
        downloadBps: parseRate(opts.downloadLimit),
        backToSourceBps: parseRate(opts.backToSourceLimit),
        quotaBytes: parseSize(opts.quota),
        authTtlMs: parseDuration(opts.authTtl),
        swarmStartTimeoutMs: parseDuration(opts.swarmStartTimeout),
        prefetchLayers: opts.prefetchLayers !== false,
        corruptPieces: Boolean(opts.faultCorruptPieces),
        log,
      });
      log.info({ address: a.address, id: a.node.self.id, role: 'agent', pid: process.pid }, 'listening');
      log.flush();
      onSignals(log, () => a.close());
    } catch (err) {
      fail('agent', err);
    }
  });

  agent
    .command('containerd-config')
    .description("Write containerd's hosts.toml so pulls from REGISTRY go through this node's agent first, then the registry.")
    .requiredOption('--registry <host:port>', 'registry as it appears in image names, e.g. registry.example.com or 10.0.0.5:5000')
    .option('--agent <url>', 'agent URL on this node', 'http://127.0.0.1:65001')
    .addOption(new Option('--registry-scheme <scheme>', 'scheme of the registry').choices(['http', 'https']).default('https'))
    .option('--dir <dir>', "containerd's config_path", '/etc/containerd/certs.d')
    .option('--print', 'print instead of writing', false)
    .action(async (opts) => {
      const o = { registry: opts.registry, registryScheme: opts.registryScheme, agentUrl: opts.agent };
      if (opts.print) return void process.stdout.write(renderHostsToml(o));
      try {
        const file = await writeHostsToml(opts.dir, o);
        console.log(`wrote ${file}`);
        console.log(`containerd must have config_path = "${opts.dir}" under [plugins."io.containerd.grpc.v1.cri".registry] (or ctr --hosts-dir ${opts.dir}).`);
      } catch (err) {
        fail('agent containerd-config', err);
      }
    });

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
