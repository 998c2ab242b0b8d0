// Flags and helpers the P2P roles share (scheduler, seed, agent). Imports nothing heavy: the agent's
// own entry point (agent-main.ts) builds on it.
import { Command, Option } from 'commander';
import { parseDuration, parseListen, parseSize } from '../server/units.js';
import { DEFAULT_UPLOAD_QUEUE, DEFAULT_UPLOAD_QUEUE_WAIT_MS } from '../p2p/peer/upload-slots.js';
import { DEFAULT_TASK_SHARE_WINDOW_MS } from '../p2p/peer/task-shares.js';
import type { Logger } from 'pino';
import type { Locality } from '../p2p/protocol.js';

export const env = (name: string) => process.env[name];

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

/** A whole number >= 0 (a count flag). */
export function parseCount(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`invalid ${flag} "${value}": use a whole number >= 0`);
  return n;
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
export function requirePeerUrls(opts: { scheduler?: string; registry?: string }): void {
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

export function fail(prefix: string, err: unknown): never {
  console.error(`shoal ${prefix}: ${(err as Error).message}`);
  process.exit(2);
}

export function onSignals(log: { info(o: object, m: string): void; flush(): void }, close: () => Promise<void>) {
  const stop = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    await close().catch(() => undefined);
    log.flush();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

export const common = (cmd: Command) =>
  cmd
    .option('--cluster-token <token>', 'shared secret for the control plane and peer traffic (env SHOAL_CLUSTER_TOKEN)', env('SHOAL_CLUSTER_TOKEN'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(env('SHOAL_LOG_LEVEL') ?? 'info'));

export const peerFlags = (cmd: Command) =>
  common(cmd)
    .option('--advertise <url>', 'URL other peers use to reach this one (default: http://<listen>)')
    .option('--scheduler <url>', 'scheduler base URL, e.g. http://10.0.0.2:4000 (required; env SHOAL_SCHEDULER)', env('SHOAL_SCHEDULER'))
    .option('--registry <url>', 'registry base URL, e.g. http://registry:5000 (required; env SHOAL_REGISTRY)', env('SHOAL_REGISTRY'))
    .option('--data <dir>', 'cache directory for pieces and blobs', './p2p-data')
    .option('--labels <k=v,...>', 'locality: dc=..,zone=..,rack=.. (parents in the same rack/zone/dc are preferred)', env('SHOAL_LABELS'))
    .option('--upload-limit <rate>', 'cap on bytes served to other peers, e.g. 100Mbit; 0 = none', '0')
    .option('--back-to-source-limit <rate>', 'cap on bytes fetched from the registry', '0')
    .option('--quota <size>', 'disk for cached blobs (LRU eviction), e.g. 20GiB; 0 = unlimited', '0')
    .option('--upload-queue <n>', 'piece requests that may wait for a busy upload slot before the answer is 503 busy; 0 = answer busy at once', String(DEFAULT_UPLOAD_QUEUE))
    .option('--upload-queue-wait <duration>', 'longest such wait', `${DEFAULT_UPLOAD_QUEUE_WAIT_MS}ms`)
    .option('--uploads-per-child <n>', 'pieces one child may download from this peer at once (its next request is answered busy at once); default 1 for a seed, unlimited (0) for an agent')
    .option('--upload-task-share <duration>', `hold each blob to an even share of the upload slots among the blobs asked for within this window, e.g. ${DEFAULT_TASK_SHARE_WINDOW_MS}ms for a seed; 0 = first come, first served`, '0');

/** The options every peer role (seed, agent) takes from peerFlags, parsed. */
export function peerOptions(opts: Record<string, string | undefined>) {
  requirePeerUrls(opts);
  return {
    listen: parseListen(opts.listen!),
    advertise: opts.advertise,
    schedulerUrl: opts.scheduler!,
    registryUrl: opts.registry!,
    dataDir: opts.data!,
    labels: parseLabels(opts.labels),
    clusterToken: opts.clusterToken,
    uploadBps: parseRate(opts.uploadLimit!),
    backToSourceBps: parseRate(opts.backToSourceLimit!),
    quotaBytes: parseSize(opts.quota!),
    uploadQueue: parseCount(opts.uploadQueue ?? String(DEFAULT_UPLOAD_QUEUE), '--upload-queue'),
    uploadQueueWaitMs: parseDuration(opts.uploadQueueWait ?? `${DEFAULT_UPLOAD_QUEUE_WAIT_MS}ms`),
    ...(opts.uploadsPerChild !== undefined ? { uploadsPerChild: parseCount(opts.uploadsPerChild, '--uploads-per-child') } : {}),
    uploadTaskShareMs: (opts.uploadTaskShare ?? '0').trim() === '0' ? 0 : parseDuration(opts.uploadTaskShare!),
  };
}

/** Logs that a role is up, and shuts it down on SIGTERM / SIGINT. */
export function runUntilSignalled(log: Logger, fields: { address: string; id?: string; url?: string; role: string }, close: () => Promise<void>): void {
  log.info({ ...fields, pid: process.pid }, 'listening');
  log.flush();
  onSignals(log, close);
}
