// The scheduler's in-memory model and its tunables. Kept apart from the logic in core.ts so the
// fleet simulator and tests can read the shapes without the class.
import type { Digest } from '../../oci/digest.js';
import type { Locality, PeerInfo, PieceManifest, SeedFetchRequest, TaskState } from '../protocol.js';
import type { Bag } from './locality.js';

export interface SchedulerCoreOptions {
  /** Base announce interval handed to peers (ms). */
  announceIntervalMs: number;
  /** Upper bound when the interval is raised to shed load. */
  maxAnnounceIntervalMs: number;
  /**
   * Announces per second the scheduler is willing to take. The interval grows so that
   * (active peer-task pairs) / interval stays within it: 10k peers x 4 layers at 8000/s -> 5 s.
   * The interval is also how soon a child replaces parents that have nothing left for it, so it
   * bounds the tail of a rollout: at 4000/s (7.5 s intervals) 10,000 simulated agents finished
   * at 2.09x the Kumar-Ross bound, at 8000/s at 1.55x. 8000/s of ~20 µs (core + codec) is a sixth of a core.
   */
  announceBudgetPerSec: number;
  /** +-fraction of random jitter on the interval, so a burst of peers does not stay in lock-step. */
  intervalJitter: number;
  /**
   * Replies given while this second's announces exceed announceBudgetPerSec carry this as
   * `swapSpreadMs`: the child spreads its next parent swap over it (see releaseDelayMs in
   * peer/parent-policy.ts). A fleet that started in one instant swaps idle parents in one instant
   * too: 17.5k early announces of 10,000 agents x 4 layers landed within 250 ms, the busiest
   * second of the rollout. Under budget, swaps go out at the half interval. 0 = never spread.
   */
  loadedSwapSpreadMs: number;
  /** A peer is dropped after this many intervals without an announce or heartbeat ... */
  peerTtlIntervals: number;
  /** ... but never sooner than this (agents heartbeat every 5 s once their downloads are done). */
  minPeerTtlMs: number;
  /** Children per agent parent (hard cap). */
  maxChildren: number;
  /** Children per seed parent (hard cap); seeds usually have fat uplinks. */
  seedMaxChildren: number;
  /** With `uploadBps` known, a parent gets about uploadBps / this many children ... */
  bytesPerSecPerChild: number;
  /**
   * ... but never fewer than this (nor more than its maxChildren): children share a parent's
   * uplink fairly, and a slow-NIC parent with one child mostly idles, since that child gets most
   * pieces elsewhere.
   */
  minChildren: number;
  /** `wantParents` is clamped to this; a child has at most this + 2 parents recorded. */
  maxParents: number;
  /** Candidates examined per announce (Dragonfly samples 15; Kraken hands out up to 50). */
  sampleSize: number;
  /** Score per level of shared locality (dc, zone, rack) when ranking candidate parents. */
  localityWeight: number;
  /**
   * Score for being ahead of the child: this x (parent's share of pieces - child's share), when
   * positive. A parent no further along than its child can rarely give it anything it lacks.
   */
  progressWeight: number;
  /** Random spread added to parent scores, so near-equal parents are picked at random (Kraken's random graph). */
  scoreJitter: number;
  /** Peers per task told to go back to source at a time. */
  backToSourceLimit: number;
  /** A back-to-source grant not finished by then is handed to someone else. */
  backToSourceTtlMs: number;
  /** How long a parent reported unreachable/slow/refused stays excluded for the reporter. */
  reporterExcludeMs: number;
  /** How long a parent the child released as idle (`releasedParents`) is not handed back to it. */
  releaseExcludeMs: number;
  /** Distinct reporters within this window ... */
  reportWindowMs: number;
  /** ... this many of them put the peer in cool-down for everyone. */
  reportThreshold: number;
  cooldownMs: number;
  /** A seed fetch not published by then is retried on another seed. */
  seedFetchTimeoutMs: number;
  /** A seed whose fetch failed is not asked again for that task for this long. */
  seedFailureTtlMs: number;
  /** Tasks without peers or fetches are forgotten after this long. */
  taskIdleTtlMs: number;
  /** Injected randomness in [0, 1): deterministic tests and virtual-time simulation. */
  random: () => number;
  /** Registry base URL put into seed fetch requests (the seed's own --registry otherwise). */
  registryUrl?: string;
  /**
   * Effect: ask a seed to fetch a blob from the registry. Called after the core call that caused
   * it has finished (never re-entrantly), so the callback may call back into the core.
   */
  requestSeedFetch?: (seed: PeerInfo, req: SeedFetchRequest) => void;
}

export const DEFAULT_SCHEDULER_OPTIONS: Readonly<Omit<SchedulerCoreOptions, 'random' | 'requestSeedFetch' | 'registryUrl'>> = Object.freeze({
  announceIntervalMs: 2000,
  maxAnnounceIntervalMs: 30_000,
  announceBudgetPerSec: 8000,
  intervalJitter: 0.1,
  loadedSwapSpreadMs: 1000,
  peerTtlIntervals: 3,
  minPeerTtlMs: 15_000,
  maxChildren: 20,
  seedMaxChildren: 48,
  bytesPerSecPerChild: 16 * 1024 * 1024,
  minChildren: 4,
  maxParents: 16,
  sampleSize: 40,
  localityWeight: 10,
  progressWeight: 40,
  scoreJitter: 0.5,
  backToSourceLimit: 3,
  backToSourceTtlMs: 10 * 60_000,
  reporterExcludeMs: 5 * 60_000,
  releaseExcludeMs: 10_000,
  reportWindowMs: 60_000,
  reportThreshold: 2,
  cooldownMs: 30_000,
  seedFetchTimeoutMs: 10 * 60_000,
  seedFailureTtlMs: 60_000,
  taskIdleTtlMs: 10 * 60_000,
});

/** Fills in defaults and rejects nonsense (a zero cap or interval would stall every swarm). */
export function resolveOptions(opts: Partial<SchedulerCoreOptions>): SchedulerCoreOptions {
  const o: SchedulerCoreOptions = { ...DEFAULT_SCHEDULER_OPTIONS, random: Math.random, ...opts };
  for (const k of ['announceIntervalMs', 'maxChildren', 'seedMaxChildren', 'sampleSize', 'announceBudgetPerSec', 'peerTtlIntervals', 'bytesPerSecPerChild'] as const) {
    if (!(o[k] > 0)) throw new RangeError(`scheduler option ${k} must be > 0 (got ${o[k]})`);
  }
  if (!(o.maxAnnounceIntervalMs >= o.announceIntervalMs)) throw new RangeError('maxAnnounceIntervalMs must be >= announceIntervalMs');
  if (!(o.minChildren >= 1) || !(o.releaseExcludeMs >= 0)) throw new RangeError('minChildren must be >= 1 and releaseExcludeMs >= 0');
  if (!(o.backToSourceLimit >= 0) || !(o.reportThreshold >= 1) || !(o.maxParents >= 0)) throw new RangeError('backToSourceLimit and maxParents must be >= 0, reportThreshold >= 1');
  return o;
}

export interface PeerRec {
  info: PeerInfo;
  keys: { dc: string; zone: string; rack: string };
  /** The same keys as small integers (one id per distinct key in this core): scoring compares numbers, not label strings. */
  loc: { dc: number; zone: number; rack: number };
  /** Child cap, from role and uploadBps. */
  cap: number;
  /** Dropped by expire() once now passes this. */
  deadline: number;
  /** Not handed out as a parent until then (reported by several peers). */
  cooldownUntil: number;
  /** Its latest heartbeat said it was uploading pieces (HeartbeatRequest.uploading). */
  uploading: boolean;
  /** Tasks this peer takes part in (seeds: those where it has been handed out as a parent). */
  members: Map<Digest, Member>;
  /** Seeds only: blobs held complete, and fetches asked of it that have not published yet. */
  holdings?: Set<Digest>;
  fetching?: Set<Digest>;
}

/** One peer in one task's swarm. */
export interface Member {
  peer: PeerRec;
  task: Task;
  state: TaskState;
  completed: number;
  /** Children currently assigned to this member as a parent. */
  children: number;
  /** Parents assigned to this member and not yet released (oldest first). */
  parents: Member[];
  /** Parents this member reported or released, and until when they stay excluded for it (keyed by the record: no string hashing on the hot path). */
  excluded?: Map<PeerRec, number>;
  /** excluded's size at which its expired entries are next swept out (doubles: a rollout shorter than the exclusion sweeps nothing, and walked 32+ entries on every announce). */
  excludedSweepAt: number;
  /** Set while this member holds a back-to-source grant. */
  btsSince?: number;
  /** In the task's candidate bags (servable agent with a free child slot). */
  bagged: boolean;
  removed: boolean;
  /** Which parent choice last looked at it as a candidate (see swarm.ts Seen): no Set per announce. */
  seenBy: number;
  /** Its position in each of its task's candidate bags (see locality.ts Bag), -1 when out. */
  bagPos: number[];
  /**
   * Its dc, zone and rack bags, looked up once (a burst re-bags parents by the thousand); the
   * task keeps empty bags, so these stay valid until the peer's labels change (null then).
   */
  bags: Array<Bag<Member>> | null;
}

export interface SeedFetch {
  seedId: string;
  since: number;
  /** Locality of the peer that caused it, for choosing a replacement seed on failure. */
  labels: Locality;
}

/** A swarm: everyone downloading or holding one blob. */
export interface Task {
  digest: Digest;
  size?: number;
  repo?: string;
  manifest?: PieceManifest;
  /** Agents and seed members by peer id. */
  members: Map<string, Member>;
  /**
   * Parent candidates: agents that can serve (done, or have pieces or parents) and have a free
   * child slot, bucketed by locality so sampling finds near peers first without a full scan.
   */
  all: Bag<Member>;
  byDc: Map<string, Bag<Member>>;
  byZone: Map<string, Bag<Member>>;
  byRack: Map<string, Bag<Member>>;
  agents: number;
  done: number;
  /** Peers that served a corrupt piece: never handed out for this task again. */
  blocked: Set<string>;
  fetch?: SeedFetch;
  /** Seeds whose fetch failed, until when they are skipped. */
  failedSeeds: Map<string, number>;
  bts: Set<Member>;
  btsTotal: number;
  lastActive: number;
}

export interface TaskStatus {
  digest: Digest;
  size?: number;
  pieces?: PieceManifest;
  /** Agents in the swarm (not left, not expired). */
  peers: number;
  /** Agents that report the blob complete. */
  done: number;
  /** Live seeds that hold the blob complete. */
  seeds: string[];
  /** Back-to-source grants active now. */
  backToSource: number;
  backToSourceTotal: number;
  /** The seed fetch in flight, if any. */
  seedFetch?: { seed: string; ageMs: number };
  blocklisted: string[];
}

export interface SchedulerStats {
  announces: number;
  heartbeats: number;
  parentsHandedOut: number;
  badPeerReports: number;
  /** Task-wide blocklistings for corrupt pieces. */
  blocklistings: number;
  /** Cool-downs after reports from several peers. */
  cooldowns: number;
  seedFetchRequests: number;
  seedFetchFailures: number;
  backToSourceGrants: number;
  manifestsPublished: number;
  manifestConflicts: number;
  peersExpired: number;
  tasksExpired: number;
  activePeers: number;
  activeSeeds: number;
  activeTasks: number;
  /** Peer-task pairs of agents: the announce load. */
  activeMembers: number;
  /** (task, peer) corrupt blocklist entries plus peers in cool-down (as of the last expire). */
  blocklistedPeers: number;
  backToSourceActive: number;
  announceIntervalMs: number;
  /** Announces in the last full second of `now`. */
  announcesPerSec: number;
}
