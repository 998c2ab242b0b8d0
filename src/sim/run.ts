// Runs one variant of a scenario: builds the world, picks the engine, preheats or not, starts
// the control plane and the agents, kills nodes if the variant says so, runs virtual time until
// every surviving agent has the image, and measures what the report needs.
import { loadavg } from 'node:os';
import { VirtualTime } from './engine/time.js';
import { DownloaderEngine } from './engines/downloader.js';
import { ThinEngine } from './engines/thin.js';
import { kumarRoss, type Bound } from './bound.js';
import type { Progress } from './progress.js';
import type { Engine, Scenario, Variant } from './scenario.js';
import type { SchedulerLoad, SimScheduler } from './sched.js';
import { World, type SimHost } from './world.js';
import { downloaderDefaults, type DownloaderKnobs } from './engines/knobs.js';

/** Above this many (agent x piece) downloads, `auto` uses the thin engine. */
export const AUTO_DOWNLOADER_MAX_PIECES = 60_000;

export interface VariantResult {
  scenario: string;
  variant: string;
  mode: string;
  engine: 'downloader' | 'thin';
  nodes: number;
  seeds: number;
  layers: number;
  image_bytes: number;
  piece_size: number;
  pieces_per_node: number;
  nic_bps: number;
  registry_bps: number;
  completed: number;
  expected: number;
  killed: number;
  fallbacks: number;
  /** Piece requests refused (busy, not-found, unreachable), by kind. */
  refusals: Record<string, number>;
  p50_s: number;
  p90_s: number;
  p99_s: number;
  max_s: number;
  mean_s: number;
  /** Readers only: when the clients read their first byte, p50 over the agents (bench/p2p's ttfb p50). */
  first_byte_p50_s?: number;
  bound_s: number;
  bound: Bound;
  ratio_to_bound: number;
  origin_bytes: number;
  preheat_origin_bytes: number;
  /** Registry bytes (preheat included) / image size. */
  origin_ratio: number;
  /** Registry bytes during the rollout only / image size. */
  origin_ratio_rollout: number;
  bytes_from_seeds: number;
  bytes_from_peers: number;
  /** Bytes agents uploaded / (their upload capacity x the rollout's duration). */
  agent_upload_utilisation: number;
  /** Share of surviving agents that never uploaded a byte. */
  agents_never_uploaded: number;
  window_ms: number;
  /** The TaskDownloader options in force (the real code's defaults plus overrides) and where the defaults came from. */
  downloader_options: DownloaderKnobs;
  /** Scheduler options set by the scenario/variant (the rest are SchedulerCore's defaults). */
  scheduler_options: Record<string, number>;
  /** Upload slots of an agent's peer server (maxConcurrentUploads). */
  upload_slots: number;
  /** How agents share their uplink among children (progressWeight's base; 1 = evenly). */
  upload_weight_base: number;
  /** Requests that may wait for a busy upload slot, and for how long (ms). */
  upload_queue: number;
  upload_queue_wait_ms: number;
  /** A seed's task share window (ms; 0 = first come, first served). */
  seed_task_share_ms: number;
  /** Pieces a seed serves one child at once (0 = no limit). Absent in results from before 2026-12-07 (no limit then). */
  seed_uploads_per_child?: number;
  /** The most pieces a seed served one child at once in this run. */
  seed_most_uploads_per_child?: number;
  /** Seeds' super-seeding hold (ms; 0: seeds showed every piece). */
  super_seed_hold_ms?: number;
  /** Of the first uploads a seed started of a layer, one per piece, the share that were of distinct pieces (mean over seeds and layers; 1 = no piece twice). */
  seed_first_round_distinct?: number;
  start_spread_ms: number;
  /** The agents started every layer at once (agent layer prefetch) instead of containerd's layerConcurrency. */
  prefetch_layers?: boolean;
  /** Clients read each blob in order and the agents follow them (scenario `readers`). Absent before 2026-12-07 (no readers then). */
  readers?: boolean;
  /** The random seed of the run (the variant's or the scenario's). */
  seed?: number;
  /** Piece bytes per byte of link capacity (network.payloadShare; 1 = payload at line rate). */
  payload_share?: number;
  scheduler: (SchedulerLoad & { cpu_share: number; headroom: number; codec_cpu_share: number }) | null;
  scheduler_peak_msgs_per_s: number;
  scheduler_cpu_share: number;
  virtual_s: number;
  wall_s: number;
  process_cpu_s: number;
  /** 1-minute load average of the machine at the start and the end (other work competes for the cores). */
  loadavg_start: number;
  loadavg_end: number;
  events: number;
  flows: number;
  recomputes: number;
  recompute_wall_s: number;
  /** [seconds, fraction of expected agents done], at most ~200 points. */
  cdf: Array<[number, number]>;
  /**
   * Per sample of the rollout (every virtual second, or every bound/200 seconds when that is longer,
   * so a long direct pull is not walked 8,590 times): agents' upload used (bytes uploaded / capacity
   * of live agents over the interval), share of agents with no upload in progress at the sample, agents done, and at the
   * sample: the agents' download rate over the download capacity of those still pulling, and
   * the transfers in progress.
   */
  timeline: Array<{ t: number; upload_used: number; idle_uploaders: number; done: number; download_used: number; transfers: number }>;
}

export function pickEngine(s: Scenario, v: Variant): 'downloader' | 'thin' {
  const e: Engine = v.engine ?? s.engine;
  if (e !== 'auto') return e;
  const pieces = s.layers.reduce((a, size) => a + Math.ceil(size / (s.pieceSize ?? pieceSizeOf(size))), 0);
  return s.nodes * pieces <= AUTO_DOWNLOADER_MAX_PIECES ? 'downloader' : 'thin';
}

function pieceSizeOf(size: number): number {
  let p = 4 * 1024 * 1024;
  while (p < size / 500 && p < 64 * 1024 * 1024) p *= 2;
  return p;
}

export async function runVariant(s: Scenario, v: Variant, progress?: Progress): Promise<VariantResult> {
  const wall0 = performance.now();
  const cpu0 = process.cpuUsage();
  const load0 = loadavg()[0]!;
  // DOMExceptions from the downloader's abort() capture stacks nobody reads; that is most of their cost.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const { result, sched, t0 } = await simulate(s, v, wall0, progress);
    // The world is unreachable by now, so the replay that measures the scheduler does not share
    // the process with a gigabyte of simulator state (its garbage collections would be charged).
    const load = sched?.load(t0) ?? null;
    const virtualS = result.virtual_s;
    const cpu = process.cpuUsage(cpu0);
    const scheduler = load && {
      ...load,
      cpu_share: virtualS > 0 ? load.cpuS / virtualS : 0,
      headroom: load.cpuS > 0 ? virtualS / load.cpuS : Infinity,
      codec_cpu_share: virtualS > 0 ? load.codecCpuS / virtualS : 0,
    };
    return {
      ...result,
      scheduler,
      scheduler_peak_msgs_per_s: load?.peakMsgsPerS ?? 0,
      scheduler_cpu_share: scheduler?.cpu_share ?? 0,
      wall_s: (performance.now() - wall0) / 1000,
      process_cpu_s: (cpu.user + cpu.system) / 1e6,
      loadavg_start: load0,
      loadavg_end: loadavg()[0]!,
    };
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
}

type SimOnly = Omit<VariantResult, 'scheduler' | 'scheduler_peak_msgs_per_s' | 'scheduler_cpu_share' | 'wall_s' | 'process_cpu_s' | 'loadavg_start' | 'loadavg_end'>;

async function simulate(s: Scenario, v: Variant, wall0: number, progress?: Progress): Promise<{ result: SimOnly; sched: SimScheduler | null; t0: number }> {
  {
    const time = new VirtualTime();
    const world = new World(time, s, v);
    world.crash = v.failure?.mode !== 'hang';
    const engineName = pickEngine(s, v);
    world.engine = engineName === 'downloader' ? new DownloaderEngine(world) : new ThinEngine(world);
    const imageBytes = s.layers.reduce((a, b) => a + b, 0);
    const boundFor = (agents: SimHost[]) =>
      kumarRoss({ mode: v.mode, bytes: imageBytes, agents: agents.map((a) => ({ up: a.upBps, down: a.downBps })), seedsUpBps: world.seeds.reduce((a, x) => a + x.upBps, 0), registryBps: s.registryEgressBps });

    // The fleet is running before the rollout: heartbeats (random phase) register every agent and
    // seed first; the pulls start one agent heartbeat interval in. Times are measured from there.
    const t0 = v.mode === 'direct' ? 0 : Math.max(s.agentHeartbeatMs, s.seedHeartbeatMs);
    const spread = v.startSpreadMs ?? s.startSpreadMs;
    for (const a of world.agents) a.startAt = t0 + (spread > 0 ? world.rng() * spread : 0);
    if (v.mode === 'p2p-preheat') world.preheat();
    const alive = () => world.agents.length - world.killed;
    const finished = () => world.completed >= alive();
    world.startControlPlane(finished);
    for (const a of world.agents) world.startAgent(a);
    if (v.failure) {
      const f = v.failure;
      time.at(t0 + f.atBoundFraction * boundFor(world.agents).s * 1000, () => {
        const pool = world.agents.filter((a) => a.alive && a.doneAt < 0);
        for (let i = pool.length - 1; i > 0; i--) {
          const j = Math.floor(world.rng() * (i + 1));
          [pool[i], pool[j]] = [pool[j]!, pool[i]!];
        }
        for (const a of pool.slice(0, Math.ceil(f.fraction * world.agents.length))) world.kill(a);
      });
    }
    const timeline: SimOnly['timeline'] = [];
    const sampleEveryS = Math.max(1, Math.ceil(boundFor(world.agents).s / 200));
    let lastUploaded = 0;
    const sample = () => {
      if (finished()) return;
      let up = 0;
      let cap = 0;
      let idle = 0;
      let live = 0;
      for (const a of world.agents) {
        up += a.uploaded;
        if (!a.alive) continue;
        live++;
        cap += a.upBps;
        if (a.uploads === 0) idle++;
      }
      // From the links' use, O(agents): walking every flow each virtual second made a direct
      // pull of 10,000 agents (40,000 flows for 8,590 virtual seconds) four times slower.
      let downRate = 0;
      let downCap = 0;
      for (const a of world.agents) {
        if (!a.alive || a.doneAt >= 0) continue;
        downCap += a.downBps;
        downRate += world.net.linkUseBps(a.down);
      }
      timeline.push({
        t: Math.round((time.now() - t0) / 1000),
        upload_used: round((up - lastUploaded) / Math.max(1, cap * sampleEveryS), 3),
        idle_uploaders: round(idle / Math.max(1, live), 3),
        done: world.completed,
        download_used: round(downRate / Math.max(1, downCap), 3),
        transfers: world.net.active,
      });
      lastUploaded = up;
      time.after(sampleEveryS * 1000, sample);
    };
    time.at(t0 + sampleEveryS * 1000, sample);
    const label = `${s.name}/${v.name}`;
    await time.run({
      until: t0 + s.maxVirtualS * 1000,
      stop: finished,
      onWall: { everyMs: 250, fn: (now) => progress?.update(label, world.completed, alive(), now - t0, performance.now() - wall0) },
    });
    progress?.update(label, world.completed, alive(), time.now() - t0, performance.now() - wall0);
    progress?.end();

    const survivors = world.agents.filter((a) => a.alive);
    const times = survivors.filter((a) => a.doneAt >= 0).map((a) => (a.doneAt - t0) / 1000).sort((a, b) => a - b);
    const bound = boundFor(survivors);
    const firstBytes = survivors.filter((a) => a.firstByteAt >= 0).map((a) => (a.firstByteAt - t0) / 1000).sort((a, b) => a - b);
    const expected = survivors.length;
    const complete = times.length === expected;
    const maxS = complete && times.length > 0 ? times[times.length - 1]! : Infinity;
    const virtualS = (time.now() - t0) / 1000;
    const sched = world.sched;
    sched?.detach();
    const firstRounds = world.seedFirstRounds();
    const result: SimOnly = {
      scenario: s.name,
      variant: v.name,
      mode: v.mode,
      engine: engineName,
      nodes: s.nodes,
      seeds: world.seeds.length,
      layers: s.layers.length,
      image_bytes: imageBytes,
      piece_size: world.layers[0]!.pieceSize,
      pieces_per_node: world.layers.reduce((a, l) => a + l.numPieces, 0),
      nic_bps: v.nicBps ?? s.nicDownBps,
      registry_bps: s.registryEgressBps,
      completed: times.length,
      expected,
      killed: world.killed,
      fallbacks: world.agents.reduce((a, h) => a + h.fallbacks, 0),
      refusals: { ...world.refusals },
      p50_s: pct(times, 0.5, expected),
      p90_s: pct(times, 0.9, expected),
      p99_s: pct(times, 0.99, expected),
      ...(world.readers ? { first_byte_p50_s: pct(firstBytes, 0.5, expected) } : {}),
      max_s: maxS,
      mean_s: times.length > 0 ? times.reduce((a, b) => a + b, 0) / times.length : Infinity,
      bound_s: bound.s,
      bound,
      ratio_to_bound: maxS / bound.s,
      origin_bytes: world.bytes.origin + world.bytes.preheatOrigin,
      preheat_origin_bytes: world.bytes.preheatOrigin,
      origin_ratio: (world.bytes.origin + world.bytes.preheatOrigin) / imageBytes,
      origin_ratio_rollout: world.bytes.origin / imageBytes,
      bytes_from_seeds: world.bytes.fromSeeds,
      bytes_from_peers: world.bytes.fromPeers,
      agent_upload_utilisation: survivors.reduce((a, h) => a + h.uploaded, 0) / Math.max(1, survivors.reduce((a, h) => a + h.upBps, 0) * virtualS),
      agents_never_uploaded: survivors.filter((h) => h.uploaded === 0).length / Math.max(1, survivors.length),
      window_ms: world.net.windowMs,
      downloader_options: downloaderDefaults(world.downloaderOptions),
      scheduler_options: { ...s.scheduler, ...v.scheduler },
      upload_slots: world.agents[0]?.slots ?? 0,
      upload_weight_base: world.uploadWeightBase,
      upload_queue: world.uploadQueue,
      upload_queue_wait_ms: world.uploadQueueWaitMs,
      seed_task_share_ms: world.seedTaskShareMs,
      seed_uploads_per_child: world.seedUploadsPerChild,
      seed_most_uploads_per_child: world.seedMostPerChild,
      super_seed_hold_ms: world.superSeedHoldMs,
      ...(firstRounds !== null ? { seed_first_round_distinct: round(firstRounds, 3) } : {}),
      start_spread_ms: spread,
      prefetch_layers: v.prefetchLayers ?? s.prefetchLayers,
      readers: world.readers !== null,
      seed: world.seed,
      payload_share: s.network.payloadShare,
      virtual_s: virtualS,
      events: time.events,
      flows: world.net.stats.flowsStarted,
      recomputes: world.net.stats.recomputes,
      recompute_wall_s: world.net.stats.recomputeWallMs / 1000,
      cdf: cdf(times, expected),
      timeline,
    };
    // Drop the agenda (its closures hold the world) before the scheduler replay runs.
    time.clear();
    return { result, sched, t0 };
  }
}

/** Nearest-rank percentile over `expected` agents; Infinity when that rank never finished. */
function pct(sorted: number[], q: number, expected: number): number {
  if (expected === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * expected));
  return rank <= sorted.length ? sorted[rank - 1]! : Infinity;
}

function cdf(sorted: number[], expected: number): Array<[number, number]> {
  if (sorted.length === 0 || expected === 0) return [];
  const out: Array<[number, number]> = [[sorted[0]!, 1 / expected]];
  const step = Math.max(1, Math.floor(sorted.length / 200));
  for (let i = step - 1; i < sorted.length; i += step) out.push([sorted[i]!, (i + 1) / expected]);
  const last = sorted.length - 1;
  if (out[out.length - 1]![0] !== sorted[last]) out.push([sorted[last]!, sorted.length / expected]);
  return out.map(([t, f]) => [round(t, 4), round(f, 5)]);
}

function round(x: number, d: number): number {
  const m = 10 ** d;
  return Math.round(x * m) / m;
}
