#!/usr/bin/env node
// The `shoal` command.
import { Command, Option } from 'commander';
import { loadServeConfig, parseDuration, serveDefaults } from '../server/config.js';
import { startRegistry, openStores } from '../server/registry-process.js';
import { createLogger } from '../server/logger.js';
import { GarbageCollector } from '../gc/collector.js';
import { registerP2pCommands } from './p2p-commands.js';
import { registerSimCommand } from '../sim/cli.js';
import { registerAllInOne } from './all-in-one.js';
import { registerChainCommands } from '../chain/cli.js';
import { registerScanCommands } from './scan-commands.js';
import { formatBytes } from '../server/format.js';
import { addTenancyServeOptions, registerTenancyCommands } from './tenancy-commands.js';

const program = new Command();
program
  .name('shoal')
  .description('Shoal: an OCI registry and image distribution system for large fleets.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  // Options after a subcommand belong to it (`shoal agent containerd-config --registry ...`).
  .enablePositionalOptions();

addTenancyServeOptions(program
  .command('serve'))
  .description('Run the registry (OCI Distribution Spec v1.1) on embedded defaults: filesystem blobs + SQLite metadata under --data.')
  .option('--listen <host:port>', 'address to listen on (env SHOAL_LISTEN); port 0 picks a free port', serveDefaults.listen)
  .option('--data <dir>', 'data directory for blobs (storage/) and metadata (meta.db) (env SHOAL_DATA)', serveDefaults.data)
  .addOption(new Option('--log-level <level>', 'log level (env SHOAL_LOG_LEVEL)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(serveDefaults.logLevel))
  .addOption(
    new Option('--access-log <mode>', 'access log: "default" logs every request except successful manifest GET/HEAD and blob HEAD (counted in /metrics), "all", or "off" (env SHOAL_ACCESS_LOG)')
      .choices(['default', 'all', 'off'])
      .default(serveDefaults.accessLog),
  )
  .option('--max-manifest-size <size>', 'largest manifest accepted, e.g. 8MiB', serveDefaults.maxManifestSize)
  .option('--max-blob-size <size>', 'largest blob accepted, e.g. 64GiB', serveDefaults.maxBlobSize)
  .option('--manifest-cache-size <size>', 'memory for the hot-manifest cache; 0 disables it', serveDefaults.manifestCacheSize)
  .option('--manifest-cache-ttl <duration>', 'how long a cached tag/manifest is trusted without a database check (bounds staleness from other processes)', serveDefaults.manifestCacheTtl)
  .option('--gc-interval <duration|off>', 'run online garbage collection this often (e.g. 1h), or "off"', serveDefaults.gcInterval)
  .option('--gc-grace <duration>', 'blobs touched more recently than this are never collected (protects pushes in flight)', serveDefaults.gcGrace)
  .option('--gc-delete-untagged', 'scheduled GC also deletes untagged manifests', false)
  .option('--upload-ttl <duration>', 'abandoned upload sessions older than this are purged by GC', serveDefaults.uploadTtl)
  .option('--no-chains', 'switch off delivery chains (scan → gate → replicate → preheat → notify) and the pull gate')
  .action(async (opts) => {
    const config = loadOrExit(opts);
    const log = createLogger(config.logLevel);
    let running;
    try {
      running = await startRegistry(config, log);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const hint = e.code === 'EADDRINUSE' ? ` (is another registry already on ${opts.listen}? pick another --listen)` : '';
      console.error(`shoal serve: cannot start: ${e.message}${hint}`);
      process.exit(1);
    }
    log.info({ address: running.address, data: config.data, pid: process.pid }, 'listening');
    log.flush();
    const stop = async (signal: string) => {
      log.info({ signal }, 'shutting down');
      await running.close();
      log.flush();
      process.exit(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });

program
  .command('gc')
  .description(
    'Reclaim storage: delete unreferenced blobs (and, with --delete-untagged, untagged manifests). ' +
      'Safe while the registry is serving: blobs touched within --grace are kept and concurrent pushes win every race.',
  )
  .option('--data <dir>', 'data directory of the registry', serveDefaults.data)
  .option('--dry-run', 'report what would be deleted; change nothing', false)
  .option('--delete-untagged', 'also delete manifests that no tag, index or present subject refers to', false)
  .option('--grace <duration>', 'keep anything touched more recently than this', serveDefaults.gcGrace)
  .option('--upload-ttl <duration>', 'purge upload sessions older than this', serveDefaults.uploadTtl)
  .option('--orphans', 'also remove files in storage unknown to the metadata (walks all of storage)', false)
  .option('--json', 'print the report as JSON', false)
  .action(async (opts) => {
    const config = loadOrExit({ ...opts, listen: '127.0.0.1:0', logLevel: 'warn', gcInterval: 'off', gcGrace: opts.grace, gcDeleteUntagged: false, maxManifestSize: serveDefaults.maxManifestSize, maxBlobSize: serveDefaults.maxBlobSize, manifestCacheSize: '0', manifestCacheTtl: '1s' });
    const log = createLogger('warn', { sync: true });
    const service = await openStores(config);
    const report = await new GarbageCollector(service, log).run({
      dryRun: opts.dryRun,
      deleteUntagged: opts.deleteUntagged,
      uploadTtlMs: parseDuration(opts.uploadTtl),
      sweepOrphanFiles: opts.orphans,
    });
    await service.meta.close();
    if (opts.json) {
      console.log(JSON.stringify({ ...report, candidates: report.candidates.map((c) => c.digest) }));
      return;
    }
    const verb = report.dryRun ? 'would delete' : 'deleted';
    console.log(`gc ${report.dryRun ? '(dry run) ' : ''}done in ${report.durationMs} ms`);
    console.log(`  manifests ${verb}: ${report.manifestsDeleted}`);
    console.log(`  blobs ${verb}:     ${report.dryRun ? report.candidates.length : report.blobsDeleted} (${formatBytes(report.bytesReclaimed)})`);
    console.log(`  repository links pruned: ${report.linksPruned}`);
    console.log(`  stale uploads purged:    ${report.uploadsPurged}`);
    if (opts.orphans) console.log(`  orphan files ${verb}:    ${report.orphanFilesDeleted}`);
    if (report.dryRun) for (const c of report.candidates.slice(0, 50)) console.log(`    ${c.digest} ${formatBytes(c.size)}`);
  });

registerP2pCommands(program);
registerSimCommand(program);
registerAllInOne(program);
registerChainCommands(program);
registerScanCommands(program);
registerTenancyCommands(program);

function loadOrExit(raw: Record<string, unknown>) {
  try {
    return loadServeConfig(raw);
  } catch (err) {
    console.error(`shoal: ${(err as Error).message}`);
    process.exit(2);
  }
}

await program.parseAsync(process.argv);
