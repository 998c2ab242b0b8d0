// Scenario files: what fleet to simulate and which variants to run on it. A small YAML subset
// (./yaml.ts) or JSON; sizes and rates take units ("1GiB", "256MiB", "1Gbit", "300MB/s").
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseYaml, type Yaml } from './yaml.js';

export type Mode = 'direct' | 'p2p' | 'p2p-preheat';
export type Engine = 'auto' | 'downloader' | 'thin';

export interface Failure {
  /** Share of agents that die (chosen among those still downloading). */
  fraction: number;
  /** When, as a fraction of the Kumar–Ross bound of the variant. */
  atBoundFraction: number;
  /** crash: connections are reset (peers see errors at once); hang: silence (peers time out). */
  mode: 'crash' | 'hang';
}

export interface SlowTail {
  fraction: number;
  /** NIC of the slow nodes, bytes/s, up and down. */
  nicBps: number;
}

export interface Variant {
  name: string;
  mode: Mode;
  failure?: Failure;
  slowTail?: SlowTail;
  /** Overrides the scenario's node NIC (bytes/s). */
  nicBps?: number;
  engine?: Engine;
  /** Overrides network.windowMs (model checks). */
  windowMs?: number;
  /** Merged over the scenario's scheduler / downloader options (knob sweeps). */
  scheduler?: Record<string, number>;
  downloader?: Record<string, number>;
  /** Overrides network.maxConcurrentUploads (the peer server's upload slots). */
  maxConcurrentUploads?: number;
  /** Overrides network.uploadWeightBase. */
  uploadWeightBase?: number;
  /** Overrides network.uploadQueue. */
  uploadQueue?: number;
  /** Overrides network.seedTaskShareMs. */
  seedTaskShareMs?: number;
  /** Overrides network.seedUploadsPerChild. */
  seedUploadsPerChild?: number;
  /** Overrides network.superSeedHoldMs. */
  superSeedHoldMs?: number;
  /** Overrides startSpread (ms). */
  startSpreadMs?: number;
  /** Overrides prefetchLayers. */
  prefetchLayers?: boolean;
  /** Overrides readers. */
  readers?: boolean;
  /** Overrides the scenario's random seed (the same fleet drawn again: run-to-run spread). */
  seed?: number;
}

export interface Scenario {
  name: string;
  description: string;
  file: string;
  seed: number;
  nodes: number;
  /** Layer sizes, bytes. */
  layers: number[];
  /** Piece size override; default: protocol.ts pieceSizeFor(layer size), as the seed does. */
  pieceSize?: number;
  topology: {
    dcs: number;
    zonesPerDc: number;
    racksPerZone: number;
    /** Rack uplink = nodes in the rack x NIC / this; 0 = non-blocking (no rack link). */
    rackOversubscription: number;
    /** Zone uplink = racks x rack uplink / this; 0 = non-blocking. */
    zoneOversubscription: number;
    /** Each DC's link to the rest of the world (other DCs, the registry), bytes/s; 0 = unlimited. */
    dcUplinkBps: number;
  };
  nicUpBps: number;
  nicDownBps: number;
  seeds: { perDc: number; upBps: number; downBps: number };
  registryEgressBps: number;
  /** windowMs undefined: auto, min(10 ms, a third of one piece's time on an agent NIC). */
  /** maxConcurrentUploads: every host's upload slots; unset = the peer server's own rule (uploadSlotsFor). */
  /**
   * uploadWeightBase: how agents share their uplink among children (../p2p/peer/upload-shares.ts:
   * the child furthest behind gets the most); 1 = evenly; unset = the agent's default. Agents are
   * taken to run with --upload-limit at their NIC rate, which is what turns the weighting on.
   */
  /**
   * uploadQueue / uploadQueueWaitMs: requests that may wait for a busy upload slot, and for how
   * long, before the answer is busy (../p2p/peer/upload-slots.ts); unset = the peer server's defaults.
   */
  /**
   * seedTaskShareMs: a seed holds each layer to an even share of its upload slots among the layers
   * asked for within this many ms (../p2p/peer/task-shares.ts, the seed's --upload-task-share);
   * unset or 0 = first come, first served, the default.
   */
  /**
   * seedUploadsPerChild: pieces a seed serves one child at once (../p2p/peer/upload-slots.ts
   * uploadsPerChildFor); unset = the seed's default (1); 0 = no limit, as before 2026-12-07.
   */
  /**
   * superSeedHoldMs: seeds' super-seeding (../p2p/peer/seed-view.ts, the seed's --super-seed-hold);
   * unset or 0 = seeds show every piece, the seed's default.
   */
  /**
   * payloadShare: piece bytes per byte of link capacity (TCP/IP/HTTP headers take the rest); default
   * 1, payload at line rate, which is optimistic by the header share (~5 % measured on tc-capped
   * links: scenarios/calibration-20.yaml).
   */
  network: { rttMs: number; interDcRttMs: number; windowMs?: number; maxConcurrentUploads?: number; uploadWeightBase?: number; uploadQueue?: number; uploadQueueWaitMs?: number; seedTaskShareMs?: number; seedUploadsPerChild?: number; superSeedHoldMs?: number; payloadShare: number };
  /** Agents start their pull at a uniform random time in [0, spreadMs]. */
  startSpreadMs: number;
  /** Blobs containerd pulls at once (its max_concurrent_downloads, default 3). */
  layerConcurrency: number;
  /**
   * The agent starts every layer of the image when the manifest passes through it (its default,
   * src/p2p/agent/layer-prefetch.ts), so layerConcurrency no longer orders the swarm. Default true.
   */
  prefetchLayers: boolean;
  /**
   * Every agent's client reads each blob in order from the moment it asks for it (curl in bench/p2p,
   * containerd through the agent's mirror), layerConcurrency blobs at a time: the agent's downloader
   * then prefers the pieces from the one the reader waits on (PieceTask 'waiting' ->
   * TaskDownloader.setSequentialFrom, src/p2p/agent/swarm-jobs.ts). Default true; false: nobody
   * reads until the download is done, the picker's own order (results before 2026-12-07).
   */
  readers: boolean;
  /** Agents announce their upload capacity (the scheduler then caps their children by it). */
  announceUploadBps: boolean;
  agentHeartbeatMs: number;
  seedHeartbeatMs: number;
  expireIntervalMs: number;
  engine: Engine;
  /** Numeric scheduler options (SchedulerCoreOptions) to override. */
  scheduler: Record<string, number>;
  /** Numeric TaskDownloader options to override. */
  downloader: Record<string, number>;
  variants: Variant[];
  /** Virtual-time limit per variant, s. */
  maxVirtualS: number;
  /** Free-form notes carried into results (e.g. which published figure this mirrors). */
  compare?: Record<string, Yaml>;
}

const SIZE: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };
const RATE_BITS: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, tbit: 1e12 };

/** "1GiB", "256MiB", "3GB", 1024 → bytes. */
export function parseBytes(v: Yaml, what: string): number {
  if (typeof v === 'number' && v >= 0) return v;
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim()) : null;
  const unit = m ? SIZE[(m[2] || 'b').toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`${what}: "${String(v)}" is not a size (use e.g. 512MiB, 1GiB, 3GB)`);
  return Math.round(Number(m[1]) * unit);
}

/** "1Gbit", "40Mbit", "300MB/s", "12.5MiB/s" → bytes/s; 0 = unlimited where allowed. */
export function parseRate(v: Yaml, what: string): number {
  if (typeof v === 'number' && v >= 0) return v;
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*([a-z]*)(\/s|ps)?$/i.exec(v.trim()) : null;
  if (m) {
    const u = (m[2] || '').toLowerCase();
    if (u in RATE_BITS) return (Number(m[1]) * RATE_BITS[u]!) / 8;
    if (u in SIZE && (m[3] || u === '')) return Number(m[1]) * SIZE[u]!;
  }
  throw new Error(`${what}: "${String(v)}" is not a rate (use e.g. 1Gbit, 40Mbit, 300MB/s)`);
}

function obj(v: Yaml | undefined, what: string): Record<string, Yaml> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} must be a map`);
  return v;
}

function num(v: Yaml | undefined, what: string, dflt: number, min = 0, max = Infinity): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !(v >= min && v <= max)) throw new Error(`${what} must be a number in [${min}, ${max}] (got ${JSON.stringify(v)})`);
  return v;
}

function checkKeys(o: Record<string, Yaml>, allowed: string[], what: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new Error(`${what}: unknown key "${k}" (known: ${allowed.join(', ')})`);
}

const TOP_KEYS = ['name', 'description', 'seed', 'nodes', 'image', 'topology', 'nic', 'nicUp', 'nicDown', 'seeds', 'registry', 'network', 'startSpread', 'layerConcurrency', 'prefetchLayers', 'readers', 'announceUploadBps', 'heartbeats', 'engine', 'scheduler', 'downloader', 'variants', 'failure', 'slowTail', 'maxVirtual', 'compare'];

export function loadScenario(file: string): Scenario {
  return parseScenario(readFileSync(file, 'utf8'), file);
}

export function parseScenario(text: string, file = 'scenario.yaml'): Scenario {
  const root = obj(parseYaml(text), 'scenario');
  checkKeys(root, TOP_KEYS, 'scenario');
  const image = obj(root.image, 'image');
  checkKeys(image, ['layers', 'size', 'layerCount', 'pieceSize'], 'image');
  let layers: number[];
  if (Array.isArray(image.layers)) layers = image.layers.map((l, i) => parseBytes(l, `image.layers[${i}]`));
  else if (image.size !== undefined) {
    const total = parseBytes(image.size, 'image.size');
    const n = num(image.layerCount, 'image.layerCount', 1, 1, 1000);
    layers = Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
  } else throw new Error('image: give layers: [sizes] or size: + layerCount:');
  if (layers.length === 0 || layers.some((l) => !(l > 0))) throw new Error('image: every layer needs a positive size');

  const topo = obj(root.topology, 'topology');
  checkKeys(topo, ['dcs', 'zonesPerDc', 'racksPerZone', 'rackOversubscription', 'zoneOversubscription', 'dcUplink'], 'topology');
  const seeds = obj(root.seeds, 'seeds');
  checkKeys(seeds, ['perDc', 'nic', 'up', 'down'], 'seeds');
  const registry = obj(root.registry, 'registry');
  checkKeys(registry, ['egress'], 'registry');
  const network = obj(root.network, 'network');
  checkKeys(network, ['rttMs', 'interDcRttMs', 'windowMs', 'maxConcurrentUploads', 'uploadWeightBase', 'uploadQueue', 'uploadQueueWaitMs', 'seedTaskShareMs', 'seedUploadsPerChild', 'superSeedHoldMs', 'payloadShare'], 'network');
  const hb = obj(root.heartbeats, 'heartbeats');
  checkKeys(hb, ['agentMs', 'seedMs', 'expireMs'], 'heartbeats');
  const nic = root.nic !== undefined ? parseRate(root.nic, 'nic') : 125e6;
  const seedNic = seeds.nic !== undefined ? parseRate(seeds.nic, 'seeds.nic') : 1.25e9;
  const nodes = num(root.nodes, 'nodes', NaN, 1, 1_000_000);
  if (!Number.isInteger(nodes)) throw new Error('nodes: an integer >= 1 is required');

  const failure = parseFailure(root.failure, 'failure') ?? { fraction: 0.1, atBoundFraction: 0.5, mode: 'crash' as const };
  const slow = parseSlow(root.slowTail, 'slowTail') ?? { fraction: 0.05, nicBps: nic / 10 };
  const engine = parseEngine(root.engine, 'engine') ?? 'auto';
  const variantsRaw = root.variants ?? ['p2p-preheat'];
  if (!Array.isArray(variantsRaw) || variantsRaw.length === 0) throw new Error('variants: a non-empty list is required');
  const variants = variantsRaw.map((v, i) => parseVariant(v, i, failure, slow));
  const names = new Set<string>();
  for (const v of variants) {
    if (names.has(v.name)) throw new Error(`variants: duplicate name "${v.name}"`);
    names.add(v.name);
  }

  return {
    name: typeof root.name === 'string' ? root.name : basename(file).replace(/\.(ya?ml|json)$/, ''),
    description: typeof root.description === 'string' ? root.description : '',
    file,
    seed: num(root.seed, 'seed', 1, 0, 2 ** 32 - 1),
    nodes,
    layers,
    ...(image.pieceSize !== undefined ? { pieceSize: parseBytes(image.pieceSize, 'image.pieceSize') } : {}),
    topology: {
      dcs: num(topo.dcs, 'topology.dcs', 1, 1, 1000),
      zonesPerDc: num(topo.zonesPerDc, 'topology.zonesPerDc', 1, 1, 1000),
      racksPerZone: num(topo.racksPerZone, 'topology.racksPerZone', 1, 1, 100_000),
      rackOversubscription: num(topo.rackOversubscription, 'topology.rackOversubscription', 0, 0, 1000),
      zoneOversubscription: num(topo.zoneOversubscription, 'topology.zoneOversubscription', 0, 0, 1000),
      dcUplinkBps: topo.dcUplink !== undefined ? parseRate(topo.dcUplink, 'topology.dcUplink') : 0,
    },
    nicUpBps: root.nicUp !== undefined ? parseRate(root.nicUp, 'nicUp') : nic,
    nicDownBps: root.nicDown !== undefined ? parseRate(root.nicDown, 'nicDown') : nic,
    seeds: {
      perDc: num(seeds.perDc, 'seeds.perDc', 1, 0, 100),
      upBps: seeds.up !== undefined ? parseRate(seeds.up, 'seeds.up') : seedNic,
      downBps: seeds.down !== undefined ? parseRate(seeds.down, 'seeds.down') : seedNic,
    },
    registryEgressBps: registry.egress !== undefined ? parseRate(registry.egress, 'registry.egress') : 1.25e9,
    network: {
      rttMs: num(network.rttMs, 'network.rttMs', 0.25, 0, 10_000),
      interDcRttMs: num(network.interDcRttMs, 'network.interDcRttMs', 10, 0, 10_000),
      ...(network.windowMs !== undefined ? { windowMs: num(network.windowMs, 'network.windowMs', 10, 0, 1000) } : {}),
      ...(network.maxConcurrentUploads !== undefined ? { maxConcurrentUploads: num(network.maxConcurrentUploads, 'network.maxConcurrentUploads', 32, 1, 100_000) } : {}),
      ...(network.uploadWeightBase !== undefined ? { uploadWeightBase: num(network.uploadWeightBase, 'network.uploadWeightBase', 1, 0.01, 1) } : {}),
      ...(network.uploadQueue !== undefined ? { uploadQueue: num(network.uploadQueue, 'network.uploadQueue', 0, 0, 1000) } : {}),
      ...(network.uploadQueueWaitMs !== undefined ? { uploadQueueWaitMs: num(network.uploadQueueWaitMs, 'network.uploadQueueWaitMs', 0, 0, 60_000) } : {}),
      ...(network.seedTaskShareMs !== undefined ? { seedTaskShareMs: num(network.seedTaskShareMs, 'network.seedTaskShareMs', 0, 0, 600_000) } : {}),
      ...(network.seedUploadsPerChild !== undefined ? { seedUploadsPerChild: num(network.seedUploadsPerChild, 'network.seedUploadsPerChild', 1, 0, 1000) } : {}),
      ...(network.superSeedHoldMs !== undefined ? { superSeedHoldMs: num(network.superSeedHoldMs, 'network.superSeedHoldMs', 0, 0, 600_000) } : {}),
      payloadShare: num(network.payloadShare, 'network.payloadShare', 1, 0.5, 1),
    },
    startSpreadMs: root.startSpread !== undefined ? parseMs(root.startSpread, 'startSpread') : 0,
    layerConcurrency: num(root.layerConcurrency, 'layerConcurrency', 3, 1, 1000),
    prefetchLayers: bool(root.prefetchLayers, 'prefetchLayers', true),
    readers: bool(root.readers, 'readers', true),
    announceUploadBps: root.announceUploadBps === true,
    agentHeartbeatMs: num(hb.agentMs, 'heartbeats.agentMs', 5000, 100),
    seedHeartbeatMs: num(hb.seedMs, 'heartbeats.seedMs', 2000, 100),
    expireIntervalMs: num(hb.expireMs, 'heartbeats.expireMs', 1000, 100),
    engine,
    scheduler: numbers(root.scheduler, 'scheduler'),
    downloader: numbers(root.downloader, 'downloader'),
    variants,
    maxVirtualS: root.maxVirtual !== undefined ? parseMs(root.maxVirtual, 'maxVirtual') / 1000 : 4 * 3600,
    ...(root.compare !== undefined ? { compare: obj(root.compare, 'compare') } : {}),
  };
}

function parseMs(v: Yaml, what: string): number {
  if (typeof v === 'number' && v >= 0) return v;
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim()) : null;
  if (!m) throw new Error(`${what}: "${String(v)}" is not a duration (use e.g. 500ms, 10s, 2h)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

function numbers(v: Yaml | undefined, what: string): Record<string, number> {
  const o = obj(v, what);
  const out: Record<string, number> = {};
  for (const [k, x] of Object.entries(o)) {
    if (typeof x !== 'number') throw new Error(`${what}.${k} must be a number`);
    out[k] = x;
  }
  return out;
}

function parseEngine(v: Yaml | undefined, what: string): Engine | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 'auto' || v === 'downloader' || v === 'thin') return v;
  throw new Error(`${what} must be auto, downloader or thin`);
}

function parseFailure(v: Yaml | undefined, what: string): Failure | undefined {
  if (v === undefined || v === null) return undefined;
  const o = obj(v, what);
  checkKeys(o, ['fraction', 'atBoundFraction', 'mode'], what);
  const mode = o.mode ?? 'crash';
  if (mode !== 'crash' && mode !== 'hang') throw new Error(`${what}.mode must be crash or hang`);
  return { fraction: num(o.fraction, `${what}.fraction`, 0.1, 0, 1), atBoundFraction: num(o.atBoundFraction, `${what}.atBoundFraction`, 0.5, 0, 100), mode };
}

function parseSlow(v: Yaml | undefined, what: string): SlowTail | undefined {
  if (v === undefined || v === null) return undefined;
  const o = obj(v, what);
  checkKeys(o, ['fraction', 'nic'], what);
  return { fraction: num(o.fraction, `${what}.fraction`, 0.05, 0, 1), nicBps: parseRate(o.nic ?? '100Mbit', `${what}.nic`) };
}

/** Variant names: direct, p2p, p2p-preheat, fail-10pct (p2p-preheat + failure), slow-tail (p2p-preheat + slowTail), or a map. */
function parseVariant(v: Yaml, i: number, failure: Failure, slow: SlowTail): Variant {
  const what = `variants[${i}]`;
  if (typeof v === 'string') {
    if (v === 'direct' || v === 'p2p' || v === 'p2p-preheat') return { name: v, mode: v };
    if (v === 'fail-10pct' || v === 'failure') return { name: v, mode: 'p2p-preheat', failure };
    if (v === 'slow-tail') return { name: v, mode: 'p2p-preheat', slowTail: slow };
    throw new Error(`${what}: unknown variant "${v}" (direct, p2p, p2p-preheat, fail-10pct, slow-tail, or a map with name/mode)`);
  }
  const o = obj(v, what);
  checkKeys(o, ['name', 'mode', 'failure', 'slowTail', 'nic', 'engine', 'windowMs', 'scheduler', 'downloader', 'maxConcurrentUploads', 'uploadWeightBase', 'uploadQueue', 'seedTaskShareMs', 'seedUploadsPerChild', 'superSeedHoldMs', 'startSpread', 'prefetchLayers', 'readers', 'seed'], what);
  const mode = o.mode;
  if (mode !== 'direct' && mode !== 'p2p' && mode !== 'p2p-preheat') throw new Error(`${what}.mode must be direct, p2p or p2p-preheat`);
  if (typeof o.name !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/i.test(o.name)) throw new Error(`${what}.name must be a simple name`);
  const f = o.failure === true ? failure : parseFailure(o.failure, `${what}.failure`);
  const s = o.slowTail === true ? slow : parseSlow(o.slowTail, `${what}.slowTail`);
  const engine = parseEngine(o.engine, `${what}.engine`);
  return {
    name: o.name,
    mode,
    ...(f ? { failure: f } : {}),
    ...(s ? { slowTail: s } : {}),
    ...(o.nic !== undefined ? { nicBps: parseRate(o.nic, `${what}.nic`) } : {}),
    ...(engine ? { engine } : {}),
    ...(o.windowMs !== undefined ? { windowMs: num(o.windowMs, `${what}.windowMs`, 0, 0, 1000) } : {}),
    ...(o.scheduler !== undefined ? { scheduler: numbers(o.scheduler, `${what}.scheduler`) } : {}),
    ...(o.downloader !== undefined ? { downloader: numbers(o.downloader, `${what}.downloader`) } : {}),
    ...(o.maxConcurrentUploads !== undefined ? { maxConcurrentUploads: num(o.maxConcurrentUploads, `${what}.maxConcurrentUploads`, 32, 1, 100_000) } : {}),
    ...(o.uploadWeightBase !== undefined ? { uploadWeightBase: num(o.uploadWeightBase, `${what}.uploadWeightBase`, 1, 0.01, 1) } : {}),
    ...(o.uploadQueue !== undefined ? { uploadQueue: num(o.uploadQueue, `${what}.uploadQueue`, 0, 0, 1000) } : {}),
    ...(o.seedTaskShareMs !== undefined ? { seedTaskShareMs: num(o.seedTaskShareMs, `${what}.seedTaskShareMs`, 0, 0, 600_000) } : {}),
    ...(o.seedUploadsPerChild !== undefined ? { seedUploadsPerChild: num(o.seedUploadsPerChild, `${what}.seedUploadsPerChild`, 1, 0, 1000) } : {}),
    ...(o.superSeedHoldMs !== undefined ? { superSeedHoldMs: num(o.superSeedHoldMs, `${what}.superSeedHoldMs`, 0, 0, 600_000) } : {}),
    ...(o.startSpread !== undefined ? { startSpreadMs: parseMs(o.startSpread, `${what}.startSpread`) } : {}),
    ...(o.prefetchLayers !== undefined ? { prefetchLayers: bool(o.prefetchLayers, `${what}.prefetchLayers`, true) } : {}),
    ...(o.readers !== undefined ? { readers: bool(o.readers, `${what}.readers`, true) } : {}),
    ...(o.seed !== undefined ? { seed: num(o.seed, `${what}.seed`, 42, 0, 2 ** 31 - 1) } : {}),
  };
}

function bool(v: Yaml | undefined, what: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new Error(`${what} must be true or false`);
  return v;
}
