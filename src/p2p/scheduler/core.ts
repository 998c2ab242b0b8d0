// The scheduler's logic with no I/O: peers announce per task, the core answers with parents,
// the piece manifest, the next announce interval and whether to go back to source. Time comes in
// as `now` (ms) and randomness through `random`, so the fleet simulator can drive 10k peers in
// virtual time. Every announce costs O(sampleSize + wantParents + seeds holding the blob); only
// expire() and the admin views walk whole maps.
import { AnnounceCalendar } from './announce-calendar.js';
import type { Digest } from '../../oci/digest.js';
import type { AnnounceRequest, AnnounceResponse, HeartbeatRequest, PeerInfo, PieceManifest, SeedFetchRequest } from '../protocol.js';
import { SchedulerError } from './errors.js';
import { localityKeys } from './locality.js';
import { OriginPlanner } from './origin.js';
import { resolveOptions, type Member, type PeerRec, type SchedulerCoreOptions, type SchedulerStats, type Task, type TaskStatus } from './model.js';
import { assignParents, dropFromBags, newMember, newTask, releaseParents, syncBags, type SwarmContext } from './swarm.js';
import { applyReleases, applyReports, ReportBook, type ReportContext } from './reports.js';
import { checkManifest, normalizePeer, sameManifest } from './validate.js';

export type { SchedulerCoreOptions, SchedulerStats, TaskStatus } from './model.js';
export { DEFAULT_SCHEDULER_OPTIONS } from './model.js';

/**
 * Children a parent may have: its upload over bytesPerSecPerChild, clamped to [minChildren, max];
 * `max` when the upload is not advertised.
 */
export function childCap(uploadBps: number | undefined, max: number, o: Pick<SchedulerCoreOptions, 'bytesPerSecPerChild' | 'minChildren'>): number {
  if (!uploadBps || uploadBps <= 0) return max;
  return Math.min(max, Math.max(o.minChildren, Math.floor(uploadBps / o.bytesPerSecPerChild)));
}

type Counters = Omit<SchedulerStats, 'activePeers' | 'activeSeeds' | 'activeTasks' | 'activeMembers' | 'blocklistedPeers' | 'backToSourceActive' | 'announceIntervalMs' | 'announcesPerSec'>;

export class SchedulerCore {
  readonly opts: SchedulerCoreOptions;
  private readonly peers = new Map<string, PeerRec>();
  private readonly seedPeers = new Map<string, PeerRec>();
  private readonly tasks = new Map<Digest, Task>();
  private readonly holders = new Map<Digest, Set<PeerRec>>();
  private readonly counters: Counters = {
    announces: 0, heartbeats: 0, parentsHandedOut: 0, badPeerReports: 0, blocklistings: 0, cooldowns: 0, seedFetchRequests: 0,
    seedFetchFailures: 0, backToSourceGrants: 0, manifestsPublished: 0, manifestConflicts: 0, peersExpired: 0, tasksExpired: 0,
  };
  private readonly ctx: SwarmContext;
  private readonly reports: ReportBook;
  private readonly reportCtx: ReportContext;
  private readonly origin: OriginPlanner;
  /** Effects produced during a call, run once the call's state changes are complete. */
  private effects: Array<() => void> = [];
  private activeMembers = 0;
  private blockedEntries = 0;
  private coolingDown = 0;
  private rateSecond = 0;
  private rateCurrent = 0;
  private ratePrevious = 0;
  private lastNow = 0;
  private readonly calendar: AnnounceCalendar;
  /** Locality key -> small integer (see PeerRec.loc); one entry per distinct dc, zone and rack seen. */
  private readonly localityIdOf = new Map<string, number>();

  constructor(opts: Partial<SchedulerCoreOptions> = {}) {
    this.opts = resolveOptions(opts);
    this.ctx = { opts: this.opts, holders: this.holders, stats: this.counters };
    this.calendar = new AnnounceCalendar(this.opts.announceBudgetPerSec, this.opts.maxAnnounceIntervalMs);
    this.reports = new ReportBook(this.opts);
    this.reportCtx = { opts: this.opts, peers: this.peers, holders: this.holders, book: this.reports, counters: this.counters, onBlocklisted: () => this.blockedEntries++ };
    this.origin = new OriginPlanner(this.opts, this.seedPeers, this.holders, this.counters, (fn) => this.effects.push(fn));
  }

  /**
   * The seed that publishes a manifest sent without naming itself: a live seed that holds the
   * blob (it heartbeats its holdings just before publishing), the one asked to fetch it first.
   */
  publisherFor(digest: Digest, now: number): string | undefined {
    const holders = [...(this.holders.get(digest) ?? [])].filter((s) => s.deadline >= now);
    const asked = this.tasks.get(digest)?.fetch?.seedId;
    return (holders.find((s) => s.info.id === asked) ?? holders[0])?.info.id;
  }

  /** Replaces the seed-fetch effect (the HTTP server installs its own). */
  setSeedFetchHandler(fn: (seed: PeerInfo, req: SeedFetchRequest) => void): void {
    this.opts.requestSeedFetch = fn;
  }

  announce(req: AnnounceRequest, now: number): AnnounceResponse {
    this.tick(now);
    this.countAnnounce(now);
    const interval = this.calendar.plan(now, this.nextInterval(), this.opts.random);
    const res = this.answerAnnounce(req, now, interval);
    if (this.rateCurrent > this.opts.announceBudgetPerSec && this.opts.loadedSwapSpreadMs > 0) res.swapSpreadMs = this.opts.loadedSwapSpreadMs;
    return res;
  }

  private answerAnnounce(req: AnnounceRequest, now: number, interval: number): AnnounceResponse {
    const peer = this.upsertPeer(req.peer, now, interval);
    const digest = req.task.digest;
    try {
      if (peer.info.role === 'seed') return this.seedAnnounce(peer, req, now, interval);
      if (req.state === 'left') {
        const m = peer.members.get(digest);
        if (m) this.removeMember(m);
        const task = this.tasks.get(digest);
        return { parents: [], ...(task?.manifest ? { pieces: task.manifest } : {}), announceIntervalMs: interval, backToSource: false };
      }
      const task = this.task(digest, now, req.task.size, req.task.repo);
      const m = this.member(task, peer);
      m.completed = Math.max(0, Math.floor(req.completedPieces));
      this.setState(m, req.state);
      if (req.badPeers?.length) applyReports(this.reportCtx, m, req.badPeers, now);
      if (req.releasedParents?.length) applyReleases(this.reportCtx, m, req.releasedParents, now);

      let backToSource = false;
      let parents: Member[] = [];
      if (m.state === 'started' || m.state === 'downloading') {
        const served = this.origin.hasSource(task, now);
        if (!served) this.origin.ensureSeedFetch(task, peer.info.labels, now);
        backToSource = !served && this.origin.grant(m, now);
        parents = assignParents(this.ctx, m, Math.max(0, Math.min(this.opts.maxParents, Math.floor(req.wantParents))), now);
      } else {
        syncBags(m);
      }
      return { parents: parents.map((p) => p.peer.info), ...(task.manifest ? { pieces: task.manifest } : {}), announceIntervalMs: interval, backToSource };
    } finally {
      this.flush();
    }
  }

  /** Registers a peer or keeps it alive; `completeTasks` (when present) replaces what it holds. */
  heartbeat(req: HeartbeatRequest, now: number): { announceIntervalMs: number } {
    this.tick(now);
    this.counters.heartbeats++;
    const interval = this.nextInterval();
    const peer = this.upsertPeer(req.peer, now, interval);
    peer.uploading = (req.uploading ?? 0) > 0;
    try {
      if (req.completeTasks) {
        const complete = new Set(req.completeTasks);
        if (peer.holdings) {
          for (const d of [...peer.holdings]) if (!complete.has(d)) this.dropHolding(peer, d);
          for (const d of complete) this.addHolding(peer, d, now);
        } else {
          for (const [d, m] of [...peer.members]) if (m.state === 'done' && !complete.has(d)) this.removeMember(m);
          // Only swarms that exist: an agent's whole cache must not become thousands of tasks.
          for (const d of complete) {
            const task = this.tasks.get(d);
            if (task) this.setState(this.member(task, peer), 'done');
          }
        }
      }
      return { announceIntervalMs: interval };
    } finally {
      this.flush();
    }
  }

  /** A seed publishes the piece manifest it computed from the verified blob; the first valid one wins. */
  publishPieces(manifest: PieceManifest, fromPeerId: string, now: number): void {
    this.tick(now);
    const peer = this.peers.get(fromPeerId);
    if (!peer || !peer.holdings || peer.deadline < now) {
      throw new SchedulerError('NOT_A_SEED', `peer "${fromPeerId.slice(0, 200)}" is not a registered seed: send a heartbeat with role "seed" first`);
    }
    checkManifest(manifest);
    const { size, pieceSize, pieceDigests } = manifest;
    const task = this.task(manifest.digest, now);
    try {
      if (task.manifest) {
        if (!sameManifest(task.manifest, manifest)) {
          this.counters.manifestConflicts++;
          throw new SchedulerError('MANIFEST_CONFLICT', `a different piece manifest for ${manifest.digest} was already published (size ${task.manifest.size}, pieceSize ${task.manifest.pieceSize}); the first one stands`);
        }
      } else {
        task.manifest = Object.freeze({ digest: manifest.digest, size, pieceSize, pieceDigests: Object.freeze([...pieceDigests]) as PieceManifest['pieceDigests'] });
        task.size = size;
        this.counters.manifestsPublished++;
      }
      this.addHolding(peer, manifest.digest, now);
    } finally {
      this.flush();
    }
  }

  /** The seed-fetch effect failed (seed answered an error or was unreachable): try another seed. */
  seedFetchFailed(digest: Digest, seedId: string, now: number): void {
    this.tick(now);
    const task = this.tasks.get(digest);
    if (task) this.origin.fetchFailed(task, seedId, now);
    this.flush();
  }

  /** Drops peers past their deadline, idle tasks, stale fetches and grants. O(peers + tasks): run it on a timer. */
  expire(now: number): void {
    this.tick(now);
    let cooling = 0;
    for (const peer of [...this.peers.values()]) {
      if (peer.deadline < now) {
        this.removePeer(peer, now);
        this.counters.peersExpired++;
      } else if (peer.cooldownUntil > now) cooling++;
    }
    this.coolingDown = cooling;
    for (const task of [...this.tasks.values()]) {
      this.origin.prune(task, now);
      for (const [id, until] of task.failedSeeds) if (until <= now) task.failedSeeds.delete(id);
      // A fetch that timed out or lost its seed moves on to another seed while agents still wait.
      const fetch = task.fetch;
      if (fetch && !this.origin.fetchInFlight(task, now) && task.agents > 0 && !this.origin.hasSource(task, now)) this.origin.ensureSeedFetch(task, fetch.labels, now);
      if (task.agents === 0 && !task.fetch && task.lastActive + this.opts.taskIdleTtlMs < now) this.dropTask(task);
    }
    this.reports.prune(now);
    this.flush();
  }

  stats(): SchedulerStats {
    return {
      ...this.counters,
      activePeers: this.peers.size,
      activeSeeds: this.seedPeers.size,
      activeTasks: this.tasks.size,
      activeMembers: this.activeMembers,
      blocklistedPeers: this.blockedEntries + this.coolingDown,
      backToSourceActive: this.origin.active,
      announceIntervalMs: this.baseInterval(),
      announcesPerSec: this.lastFullSecond(),
    };
  }

  taskStatus(digest: Digest, now = this.lastNow): TaskStatus | undefined {
    const task = this.tasks.get(digest);
    if (!task) return undefined;
    return {
      digest,
      ...(task.size !== undefined ? { size: task.size } : {}),
      ...(task.manifest ? { pieces: task.manifest } : {}),
      peers: task.agents,
      done: task.done,
      seeds: this.liveHolders(task, now).map((s) => s.info.id),
      backToSource: task.bts.size,
      backToSourceTotal: task.btsTotal,
      ...(task.fetch ? { seedFetch: { seed: task.fetch.seedId, ageMs: now - task.fetch.since } } : {}),
      blocklisted: [...task.blocked],
    };
  }

  /** Live seeds (for preheat). O(seeds). */
  seeds(now = this.lastNow): PeerInfo[] {
    return [...this.seedPeers.values()].filter((p) => p.deadline >= now).map((p) => p.info);
  }

  /** Live agents (for preheat with scope "all"). O(peers). */
  agents(now = this.lastNow): PeerInfo[] {
    return [...this.peers.values()].filter((p) => !p.holdings && p.deadline >= now).map((p) => p.info);
  }

  /** How far a blob has spread, in preheat's terms. */
  progress(digest: Digest, now = this.lastNow): { seedsDone: number; agentsDone: number } {
    const task = this.tasks.get(digest);
    let seedsDone = 0;
    for (const s of this.holders.get(digest) ?? []) if (s.deadline >= now) seedsDone++;
    return { seedsDone, agentsDone: task?.done ?? 0 };
  }

  /** Who is parent of whom in a task: O(members), for tests, the simulator and admin views. */
  inspect(digest: Digest): Array<{ id: string; role: string; state: string; completed: number; children: number; cap: number; parents: string[] }> {
    const task = this.tasks.get(digest);
    if (!task) return [];
    return [...task.members.values()].map((m) => ({
      id: m.peer.info.id, role: m.peer.info.role, state: m.state, completed: m.completed, children: m.children, cap: m.peer.cap,
      // A parent that left or expired stays in its children's lists until they next announce.
      parents: m.parents.filter((p) => !p.removed).map((p) => p.peer.info.id),
    }));
  }

  // --- peers and members -------------------------------------------------------------------

  private upsertPeer(info: PeerInfo, now: number, interval: number): PeerRec {
    let peer = this.peers.get(info.id);
    // Most messages come from a peer whose info has not changed: nothing to normalise or re-file,
    // and its PeerInfo object stays the same (the reply codec caches its JSON per object).
    if (!peer || !samePeerInfo(peer.info, info)) peer = this.filePeer(peer, normalizePeer(info), now);
    peer.deadline = Math.max(peer.deadline, now + Math.max(this.opts.minPeerTtlMs, this.opts.peerTtlIntervals * interval));
    return peer;
  }

  private localityIds(keys: PeerRec['keys']): PeerRec['loc'] {
    const id = (k: string) => {
      let n = this.localityIdOf.get(k);
      if (n === undefined) this.localityIdOf.set(k, (n = this.localityIdOf.size));
      return n;
    };
    return { dc: id(keys.dc), zone: id(keys.zone), rack: id(keys.rack) };
  }

  /** Registers a new peer, or re-files a known one whose info changed. */
  private filePeer(peer: PeerRec | undefined, clean: PeerInfo, now: number): PeerRec {
    if (peer && peer.info.role !== clean.role) {
      // A process that changed role is a different peer as far as swarms are concerned.
      this.removePeer(peer, now);
      peer = undefined;
    }
    const cap = this.capFor(clean);
    if (!peer) {
      const keys = localityKeys(clean.labels);
      peer = { info: clean, keys, loc: this.localityIds(keys), cap, deadline: 0, cooldownUntil: 0, uploading: false, members: new Map() };
      if (clean.role === 'seed') {
        peer.holdings = new Set();
        peer.fetching = new Set();
        this.seedPeers.set(clean.id, peer);
      }
      this.peers.set(clean.id, peer);
      return peer;
    }
    const keys = localityKeys(clean.labels);
    peer.info = clean;
    if (keys.rack !== peer.keys.rack || cap !== peer.cap) {
      // Moved or re-capped: re-file its memberships under the new bucket keys.
      for (const m of peer.members.values()) {
        dropFromBags(m);
        m.bags = null;
      }
      peer.keys = keys;
      peer.loc = this.localityIds(keys);
      peer.cap = cap;
      for (const m of peer.members.values()) syncBags(m);
    }
    return peer;
  }

  private capFor(info: PeerInfo): number {
    const max = info.role === 'seed' ? this.opts.seedMaxChildren : this.opts.maxChildren;
    return childCap(info.uploadBps, max, this.opts);
  }

  private task(digest: Digest, now: number, size?: number, repo?: string): Task {
    let task = this.tasks.get(digest);
    if (!task) this.tasks.set(digest, (task = newTask(digest, now)));
    task.lastActive = now;
    if (size !== undefined && !task.manifest) task.size = size;
    if (repo && !task.repo) task.repo = repo;
    return task;
  }

  private member(task: Task, peer: PeerRec): Member {
    let m = task.members.get(peer.info.id);
    if (!m) {
      m = newMember(task, peer, 'started');
      task.agents++;
      this.activeMembers++;
    }
    return m;
  }

  private setState(m: Member, state: Member['state']): void {
    const prev = m.state;
    m.state = state;
    if (prev === 'done' && state !== 'done') m.task.done--;
    if (state === 'done' && prev !== 'done') m.task.done++;
    if (state === 'done' || state === 'failed') {
      // A finished or failed peer needs no parents and no longer holds an origin slot.
      releaseParents(m);
      this.origin.release(m);
    }
    syncBags(m);
  }

  private removeMember(m: Member): void {
    if (m.removed) return;
    releaseParents(m);
    this.origin.release(m);
    m.removed = true;
    dropFromBags(m);
    const task = m.task;
    task.members.delete(m.peer.info.id);
    m.peer.members.delete(task.digest);
    if (m.peer.info.role === 'agent') {
      task.agents--;
      this.activeMembers--;
      if (m.state === 'done') task.done--;
    }
  }

  private removePeer(peer: PeerRec, now: number): void {
    for (const m of [...peer.members.values()]) this.removeMember(m);
    if (peer.holdings) {
      for (const d of [...peer.holdings]) this.dropHolding(peer, d);
      for (const d of [...peer.fetching!]) {
        // Its fetches die with it: hand them to another seed right away.
        const task = this.tasks.get(d);
        if (task) this.origin.fetchFailed(task, peer.info.id, now);
      }
      this.seedPeers.delete(peer.info.id);
    }
    this.peers.delete(peer.info.id);
  }

  private seedAnnounce(peer: PeerRec, req: AnnounceRequest, now: number, interval: number): AnnounceResponse {
    // Seeds fetch from the registry themselves; an announce only updates what they hold.
    const digest = req.task.digest;
    if (req.state === 'done') this.addHolding(peer, digest, now);
    else if (req.state === 'left' || req.state === 'failed') this.dropHolding(peer, digest);
    const task = this.tasks.get(digest);
    return { parents: [], ...(task?.manifest ? { pieces: task.manifest } : {}), announceIntervalMs: interval, backToSource: false };
  }

  private addHolding(seed: PeerRec, digest: Digest, now: number): void {
    seed.holdings!.add(digest);
    let set = this.holders.get(digest);
    if (!set) this.holders.set(digest, (set = new Set()));
    set.add(seed);
    const task = this.tasks.get(digest);
    // Published: the fetch is over, whoever it was asked of.
    if (task?.fetch && task.manifest) this.origin.clearFetch(task, now, false);
    if (task) task.lastActive = now;
  }

  private dropHolding(seed: PeerRec, digest: Digest): void {
    seed.holdings!.delete(digest);
    const set = this.holders.get(digest);
    if (set?.delete(seed) && set.size === 0) this.holders.delete(digest);
    const m = this.tasks.get(digest)?.members.get(seed.info.id);
    if (m) this.removeMember(m);
  }

  private liveHolders(task: Task, now: number): PeerRec[] {
    return [...(this.holders.get(task.digest) ?? [])].filter((s) => this.origin.liveHolder(task, s, now));
  }

  private dropTask(task: Task): void {
    for (const m of [...task.members.values()]) this.removeMember(m);
    this.blockedEntries -= task.blocked.size;
    this.tasks.delete(task.digest);
    this.counters.tasksExpired++;
  }

  // --- load shedding ------------------------------------------------------------------------

  private tick(now: number): void {
    if (now > this.lastNow) this.lastNow = now;
  }

  private countAnnounce(now: number): void {
    this.counters.announces++;
    const sec = Math.floor(now / 1000);
    if (sec !== this.rateSecond) {
      this.ratePrevious = sec === this.rateSecond + 1 ? this.rateCurrent : 0;
      this.rateCurrent = 0;
      this.rateSecond = sec;
    }
    this.rateCurrent++;
  }

  /** Announces counted in the last complete second before lastNow. */
  private lastFullSecond(): number {
    const sec = Math.floor(this.lastNow / 1000);
    if (sec === this.rateSecond) return this.ratePrevious;
    return sec === this.rateSecond + 1 ? this.rateCurrent : 0;
  }

  /** Interval that keeps (peer-task pairs) / interval within the announce budget. */
  private baseInterval(): number {
    const need = Math.ceil((this.activeMembers * 1000) / this.opts.announceBudgetPerSec);
    return Math.min(this.opts.maxAnnounceIntervalMs, Math.max(this.opts.announceIntervalMs, need));
  }

  private nextInterval(): number {
    const base = this.baseInterval();
    const j = this.opts.intervalJitter;
    return Math.max(1, Math.round(base * (1 + j * (2 * this.opts.random() - 1))));
  }

  private flush(): void {
    const effects = this.effects;
    if (effects.length === 0) return;
    this.effects = [];
    for (const e of effects) e();
  }
}

function samePeerInfo(a: PeerInfo, b: PeerInfo): boolean {
  return a.id === b.id && a.url === b.url && a.role === b.role && a.uploadBps === b.uploadBps && a.labels.dc === b.labels.dc && a.labels.zone === b.labels.zone && a.labels.rack === b.labels.rack;
}
