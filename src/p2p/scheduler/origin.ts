// Who fetches a blob from the registry: normally one seed per task (chosen by locality and a
// rendezvous hash of the digest, retried on another seed when it fails or goes silent); only
// when no seed can, at most `backToSourceLimit` agents at a time, so origin traffic stays bounded.
import type { Digest } from '../../oci/digest.js';
import type { Locality, PeerInfo, SeedFetchRequest } from '../protocol.js';
import { localityLevel, rendezvous } from './locality.js';
import type { Member, PeerRec, SchedulerCoreOptions, SchedulerStats, Task } from './model.js';

type OriginCounters = Pick<SchedulerStats, 'seedFetchRequests' | 'seedFetchFailures' | 'backToSourceGrants'>;

export class OriginPlanner {
  /** Back-to-source grants held now, over all tasks. */
  active = 0;

  constructor(
    private readonly opts: SchedulerCoreOptions,
    private readonly seedPeers: Map<string, PeerRec>,
    private readonly holders: Map<Digest, Set<PeerRec>>,
    private readonly counters: OriginCounters,
    /** Queues an effect to run after the current core call. */
    private readonly defer: (fn: () => void) => void,
  ) {}

  /** A seed that can feed the task right now (live, not cooling down, not blocklisted). */
  liveHolder(task: Task, seed: PeerRec, now: number): boolean {
    return this.alive(task, seed, now) && seed.cooldownUntil <= now;
  }

  /** Heartbeating and not blocklisted for this task (cooling down or not). */
  private alive(task: Task, seed: PeerRec, now: number): boolean {
    return seed.deadline >= now && !task.blocked.has(seed.info.id);
  }

  /**
   * The swarm can be fed without the origin: a manifest plus a live seed or a done agent. A seed
   * cooled down by its children's reports still counts while its heartbeats say it is uploading:
   * children that time out connecting to a seed that serves others meet congestion (a full
   * drop-tail queue loses their connection attempts; in bench/p2p it was mostly ARP), not a seed
   * cut off from the swarm, and granting them the registry cost three extra copies of the blob in
   * a CPU-starved 50-agent bench run.
   */
  hasSource(task: Task, now: number): boolean {
    if (!task.manifest) return false;
    if (task.done > 0) return true;
    for (const s of this.holders.get(task.digest) ?? []) if (this.alive(task, s, now) && (s.cooldownUntil <= now || s.uploading)) return true;
    return false;
  }

  /** Asks one seed to fetch the blob unless a fetch is already under way; returns whether one is. */
  ensureSeedFetch(task: Task, labels: Locality, now: number): boolean {
    if (this.fetchInFlight(task, now)) return true;
    const holding = this.holders.get(task.digest);
    const usable: PeerRec[] = [];
    for (const s of this.seedPeers.values()) {
      const failedUntil = task.failedSeeds.get(s.info.id);
      if (!this.liveHolder(task, s, now) || (failedUntil !== undefined && failedUntil > now)) continue;
      // Without a repository a seed cannot fetch; one that already holds the blob only has to re-publish.
      if (!task.repo && !holding?.has(s)) continue;
      usable.push(s);
    }
    if (usable.length === 0) return false;
    // A seed that holds the blob (e.g. after a scheduler restart) just re-publishes; otherwise
    // prefer the requester's zone, then its dc, and spread digests across that tier by hashing.
    let tier = usable.filter((s) => holding?.has(s));
    if (tier.length === 0) {
      const level = (s: PeerRec) => Math.min(2, localityLevel(labels, s.info.labels));
      const best = Math.max(...usable.map(level));
      tier = usable.filter((s) => level(s) === best);
    }
    const seed = rendezvous(task.digest, tier, (s) => s.info.id)!;
    task.fetch = { seedId: seed.info.id, since: now, labels };
    seed.fetching!.add(task.digest);
    this.counters.seedFetchRequests++;
    const req: SeedFetchRequest = { digest: task.digest, repo: task.repo ?? '', ...(this.opts.registryUrl ? { registry: this.opts.registryUrl } : {}) };
    const fn = this.opts.requestSeedFetch;
    const info: PeerInfo = seed.info;
    if (fn) this.defer(() => fn(info, req));
    return true;
  }

  /** Whether a seed fetch is under way; one that timed out or lost its seed is dropped as failed. */
  fetchInFlight(task: Task, now: number): boolean {
    const f = task.fetch;
    if (!f) return false;
    const seed = this.seedPeers.get(f.seedId);
    if (seed && seed.deadline >= now && f.since + this.opts.seedFetchTimeoutMs >= now) return true;
    this.counters.seedFetchFailures++;
    this.clearFetch(task, now, true);
    return false;
  }

  /** Forgets the fetch in flight; `failed` keeps its seed out of this task for seedFailureTtlMs. */
  clearFetch(task: Task, now: number, failed: boolean): void {
    const f = task.fetch;
    if (!f) return;
    task.fetch = undefined;
    this.seedPeers.get(f.seedId)?.fetching?.delete(task.digest);
    if (failed) task.failedSeeds.set(f.seedId, now + this.opts.seedFailureTtlMs);
  }

  /** The fetch asked of `seedId` failed (or the seed left): retry on another seed at once if needed. Stale reports only mark the seed. */
  fetchFailed(task: Task, seedId: string, now: number): void {
    task.failedSeeds.set(seedId, now + this.opts.seedFailureTtlMs);
    const f = task.fetch;
    if (f?.seedId !== seedId) return;
    this.counters.seedFetchFailures++;
    this.clearFetch(task, now, true);
    if (task.agents > 0 && !this.hasSource(task, now)) this.ensureSeedFetch(task, f.labels, now);
  }

  /** At most backToSourceLimit peers per task fetch from the origin at a time, and only without a seed. */
  grant(m: Member, now: number): boolean {
    if (m.btsSince !== undefined) return true;
    const task = m.task;
    if (task.fetch) return false;
    this.prune(task, now);
    if (task.bts.size >= this.opts.backToSourceLimit) return false;
    m.btsSince = now;
    task.bts.add(m);
    task.btsTotal++;
    this.active++;
    this.counters.backToSourceGrants++;
    return true;
  }

  release(m: Member): void {
    if (m.btsSince === undefined) return;
    m.btsSince = undefined;
    if (m.task.bts.delete(m)) this.active--;
  }

  /** Frees grants whose holder vanished or sat on it past backToSourceTtlMs. O(grants) <= K. */
  prune(task: Task, now: number): void {
    for (const g of [...task.bts]) {
      if (g.removed || g.peer.deadline < now || g.btsSince! + this.opts.backToSourceTtlMs < now) this.release(g);
    }
  }
}
