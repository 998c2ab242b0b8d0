// A download's options and the numbers derived from them (timeouts, in-flight shares), kept apart
// from the TaskDownloader so the fleet simulator's thin engine follows the same defaults and
// formulas without loading the downloader. The comments record why each default is what it is.
import type { Digest } from '../../oci/digest.js';
import type { PeerInfo } from '../protocol.js';
import type { Clock } from './clock.js';
import type { PeerLogger, PeerTransport, SchedulerClient, TaskOpener } from './download-types.js';
import type { PickerOptions } from './picker.js';
import type { ByteLimiter } from './rate-limiter.js';

const MiB = 1024 * 1024;

export interface TaskDownloaderOptions {
  /** This peer, as announced to the scheduler. */
  self: PeerInfo;
  digest: Digest;
  repo?: string;
  size?: number;
  scheduler: SchedulerClient;
  transport: PeerTransport;
  store: TaskOpener;
  /** Download bandwidth cap (shared by all downloads of the agent). Tokens are taken per piece before it is requested. */
  limiter?: ByteLimiter;
  clock?: Clock;
  rng?: () => number;
  signal?: AbortSignal;
  log?: PeerLogger;
  /**
   * Parents asked for on the first announce (and kept topped up). Default 16: a wide, steadily
   * refreshed neighbourhood keeps a child's parents from all holding the same pieces
   * (scenarios/knobs-1k.yaml: 10 -> 16 with 3 requests in flight took 1k agents from 1.65x to
   * 1.4x the Kumar-Ross bound).
   */
  wantParents?: number;
  /** Fewer usable parents than this after losing one triggers an early announce. Default 2. */
  minParents?: number;
  /** Parents kept at most. Default wantParents + 2. */
  maxParents?: number;
  /**
   * Piece requests in flight at once for the whole peer, over all parents (endgame duplicates
   * included), shared evenly by its concurrent downloads (inFlightShare). Default 8. Too few and
   * a child whose parents split their uplinks among many children cannot fill its downlink
   * (calibration-50: 3 -> 1.75x the bound, 8 -> 1.26x); too many and every piece shares the
   * downlink with the others and lands, and is passed on, later (1,000 agents pulling 4 layers
   * at once: 12 in flight -> 1.49x, 8 -> 1.33x).
   */
  maxInFlight?: number;
  /** How many downloads this peer runs now (they share maxInFlight). Default: just this one. */
  concurrentDownloads?: () => number;
  /** Bytes of pieces in flight at once (each is buffered whole until verified). Default 48 MiB. */
  maxInFlightBytes?: number;
  /**
   * Requests per agent parent / per seed parent. Defaults 3 and 5. One per seed parent (its slots
   * spread over more children) read better on the simulator's 1,000- and 2,500-agent proxies, but
   * on real agents (the 20-agent, 6 Mbit/s bench) the median went from 198 s to 240-250 s, and with
   * busyReleaseStreak the 10,000-agent fleet reads better with 5 (1.34x against 1.38x); see
   * docs/sim/ramp-experiments.md.
   */
  perParentLimit?: number;
  seedParentLimit?: number;
  /** Long-poll wait asked of parents' bitfield endpoint. Default 5000 ms. */
  bitfieldWaitMs?: number;
  /**
   * Piece timeout = base + size / (minBps / maxInFlight): minBps is the slowest the whole download
   * may go, shared by its requests in flight (see pieceTimeoutMs). Defaults 5000 ms and 128 KiB/s.
   */
  pieceTimeoutBaseMs?: number;
  pieceTimeoutMinBps?: number;
  /** Fail with STALLED when no piece lands for this long (at least two piece timeouts, see stallLimitMs). Default 120 s. */
  stallTimeoutMs?: number;
  /** Fail with STALLED when the scheduler has no manifest for this long. Default 120 s. */
  manifestTimeoutMs?: number;
  /** Minimum gap between an early announce and the previous one. Default 1000 ms. */
  earlyAnnounceGapMs?: number;
  /**
   * When the scheduler's reply asks for it (`swapSpreadMs`, sent while it is over its announce
   * budget), an early announce after releasing idle parents waits a random share of that spread,
   * capped by this and by half an interval, beyond the half interval: a fleet that started
   * together then does not swap parents in one instant (see releaseDelayMs in ./parent-policy.ts).
   * 0 = never spread. Default 1000 ms.
   */
  releaseSpreadMs?: number;
  /** A parent dropped as unreachable/refused is not re-accepted for this long; corrupt ones never. Default 30 s. */
  banMs?: number;
  /** How long a parent that answered "busy" (all upload slots taken) is left alone. Default 100 ms: slots free up a piece-time later. */
  busyBackoffMs?: number;
  /**
   * A parent unused this long that has nothing we lack is released (reported in
   * `releasedParents`, no fault) and replaced at a near announce (./parent-policy.ts). 0 = never.
   * Default 2000 ms.
   */
  idleParentMs?: number;
  /**
   * A parent that answered "busy" this many times in a row (no piece between) is released like an
   * idle one and replaced at a near announce: it serves its other children, and its child slot is
   * better given to a child it can serve (./parent-policy.ts). 0 = never. Default 4: with the busy
   * back-off, 0.7 s of refusals on fast links, three-quarters of a piece-time on slow ones (2,500-
   * agent proxy at a 5 s announce interval, max/bound: 6 -> 1.346 / 1.321, 4 -> 1.295 / 1.319, 3 ->
   * 1.293, 9 -> 1.372; seeds 42 / 43).
   */
  busyReleaseStreak?: number;
  picker?: Omit<PickerOptions, 'rng' | 'perParentLimit'>;
}

/** The numeric tuning of a download, every default applied and every bound enforced. */
export type DownloaderTuning = Required<
  Pick<
    TaskDownloaderOptions,
    | 'wantParents' | 'minParents' | 'maxParents' | 'maxInFlight' | 'maxInFlightBytes' | 'perParentLimit' | 'seedParentLimit'
    | 'bitfieldWaitMs' | 'pieceTimeoutBaseMs' | 'pieceTimeoutMinBps' | 'stallTimeoutMs' | 'manifestTimeoutMs'
    | 'earlyAnnounceGapMs' | 'releaseSpreadMs' | 'banMs' | 'busyBackoffMs' | 'idleParentMs' | 'busyReleaseStreak'
  >
>;

/** Requests one of `downloads` concurrent downloads of a peer may have in flight: an even share of maxInFlight, rounded up. */
export function inFlightShare(maxInFlight: number, downloads: number): number {
  return Math.max(1, Math.ceil(maxInFlight / Math.max(1, downloads)));
}

/**
 * How long one piece request may take: base + its bytes at the slowest rate tolerated for one
 * request. pieceTimeoutMinBps is the slowest the whole download may go (an in-process download
 * cap lowers it); up to maxInFlight requests share the downlink, so one request is owed
 * 1/maxInFlight of it. Holding each request to the whole rate dropped every parent of an agent on
 * a 6 Mbit/s link (8 requests at 94 KB/s each, a 4 MiB piece timed out at 37 s), and the agent
 * fell back to the registry. A parent that stops sending altogether is caught sooner by the
 * transport's body timeout (15 s of silence).
 */
export function pieceTimeoutMs(length: number, t: Pick<DownloaderTuning, 'pieceTimeoutBaseMs' | 'pieceTimeoutMinBps' | 'maxInFlight'>, limiterBps?: number): number {
  return t.pieceTimeoutBaseMs + ((length * t.maxInFlight) / slowestWholeBps(t, limiterBps)) * 1000;
}

/**
 * No piece has landed for this long: the download stalled. stallTimeoutMs, or two piece timeouts
 * (with every request in flight sharing the slowest tolerated rate, the first pieces all land
 * together, one piece timeout in).
 */
export function stallLimitMs(pieceSize: number, t: Pick<DownloaderTuning, 'pieceTimeoutBaseMs' | 'pieceTimeoutMinBps' | 'maxInFlight' | 'stallTimeoutMs'>, limiterBps?: number): number {
  return Math.max(t.stallTimeoutMs, 2 * pieceTimeoutMs(pieceSize, t, limiterBps));
}

function slowestWholeBps(t: Pick<DownloaderTuning, 'pieceTimeoutMinBps'>, limiterBps?: number): number {
  return Math.min(t.pieceTimeoutMinBps, limiterBps && limiterBps > 0 ? limiterBps : Infinity);
}

/** Resolves the tuning exactly as a TaskDownloader does; the fleet simulator uses it to follow the real defaults. */
export function resolveDownloaderTuning(opts: Partial<DownloaderTuning>): DownloaderTuning {
  const want = Math.max(1, opts.wantParents ?? 16);
  return {
    wantParents: want,
    minParents: Math.max(1, Math.min(want, opts.minParents ?? 2)),
    maxParents: Math.max(want, opts.maxParents ?? want + 2),
    maxInFlight: Math.max(1, opts.maxInFlight ?? 8),
    maxInFlightBytes: Math.max(1, opts.maxInFlightBytes ?? 48 * MiB),
    perParentLimit: Math.max(1, opts.perParentLimit ?? 3),
    seedParentLimit: Math.max(1, opts.seedParentLimit ?? 5),
    bitfieldWaitMs: Math.max(0, opts.bitfieldWaitMs ?? 5000),
    pieceTimeoutBaseMs: opts.pieceTimeoutBaseMs ?? 5000,
    pieceTimeoutMinBps: Math.max(1, opts.pieceTimeoutMinBps ?? 128 * 1024),
    stallTimeoutMs: opts.stallTimeoutMs ?? 120_000,
    manifestTimeoutMs: opts.manifestTimeoutMs ?? 120_000,
    earlyAnnounceGapMs: opts.earlyAnnounceGapMs ?? 1000,
    releaseSpreadMs: Math.max(0, opts.releaseSpreadMs ?? 1000),
    banMs: opts.banMs ?? 30_000,
    busyBackoffMs: opts.busyBackoffMs ?? 100,
    idleParentMs: Math.max(0, opts.idleParentMs ?? 2000),
    busyReleaseStreak: Math.max(0, Math.floor(opts.busyReleaseStreak ?? 4)),
  };
}
