// `shoal agent` (and `shoal agent containerd-config`): registered by the full CLI and by the agent's
// own light entry point (agent-main.ts), which loads only what a node agent runs.
import { Option, type Command } from 'commander';
import { parseDuration, parseSize } from '../server/units.js';
import { startBufferReclaim } from '../p2p/agent/buffer-reclaim.js';
import { createLogger } from '../server/logger.js';
import { startAgent } from '../p2p/agent/agent.js';
import { writeHostsToml, renderHostsToml } from '../p2p/agent/containerd-config.js';
import { DEFAULT_UPLOAD_WEIGHT_BASE } from '../p2p/peer/upload-shares.js';
import { fail, parseRate, parseWeightBase, peerFlags, peerOptions, runUntilSignalled } from './peer-flags.js';

export function registerAgentCommand(program: Command): void {
  const agent = peerFlags(
    program
      .command('agent')
      .description('Run the node agent: a registry mirror for containerd/Docker that serves blobs through the swarm (after the registry authorises the caller) and falls back to the registry.')
      .option('--listen <host:port>', 'address to listen on', '127.0.0.1:65001')
      .option('--download-limit <rate>', 'cap on bytes received from peers', '0')
      .option('--upload-weight-base <x>', 'under --upload-limit, share the uplink by the children\'s progress: the child holding the fewest pieces gets weight 1, the next x, then x^2...; 1 = evenly', String(DEFAULT_UPLOAD_WEIGHT_BASE))
      .option('--auth-ttl <duration>', 'how long a registry authorisation decision is reused', '30s')
      .option('--swarm-start-timeout <duration>', 'a client waits this long for the swarm to start before the registry serves it', '30s')
      .option('--buffer-reclaim <size>', 'run a full GC when network/disk buffers exceed this (keeps the agent under ~100 MB resident); 0 = leave it to V8', '16MiB')
      .option('--no-prefetch-layers', "don't start swarm downloads of all of an image's layers when its manifest passes through (containerd fetches 3 at a time)")
      .addOption(new Option('--fault-corrupt-pieces', 'chaos testing: corrupt every piece served to peers').hideHelp()),
  ).action(async (opts) => {
    try {
      const peer = peerOptions(opts);
      const log = createLogger(opts.logLevel);
      const a = await startAgent({
        ...peer,
        uploadWeightBase: parseWeightBase(opts.uploadWeightBase),
        downloadBps: parseRate(opts.downloadLimit),
        authTtlMs: parseDuration(opts.authTtl),
        swarmStartTimeoutMs: parseDuration(opts.swarmStartTimeout),
        prefetchLayers: opts.prefetchLayers !== false,
        corruptPieces: Boolean(opts.faultCorruptPieces),
        log,
      });
      const reclaimBytes = parseSize(opts.bufferReclaim);
      const reclaim = reclaimBytes > 0 ? startBufferReclaim({ limitBytes: reclaimBytes }) : null;
      runUntilSignalled(log, { address: a.address, id: a.node.self.id, role: 'agent' }, async () => {
        reclaim?.stop();
        await a.close();
      });
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
}
