// Parent selection inside one task's swarm: who may serve whom, how candidates are sampled and
// ranked, and the bookkeeping (child counts, candidate bags) that keeps every call O(sample).
import type { Digest } from '../../oci/digest.js';
import { Bag } from './locality.js';
import type { Member, PeerRec, SchedulerCoreOptions, Task } from './model.js';

export interface SwarmContext {
  readonly opts: SchedulerCoreOptions;
  /** Live-or-not seeds holding each blob complete (liveness is checked on use). */
  readonly holders: Map<Digest, Set<PeerRec>>;
  readonly stats: { parentsHandedOut: number };
}

// Score weights. Locality (opts.localityWeight per shared level: same rack > zone > dc, as in the
// brief and Dragonfly's IDC weight) and being ahead of the child (opts.progressWeight x the share
// of pieces the parent has beyond the child's) lead; then an agent that can serve beats a seed,
// so the seed's uplink is spent on early peers and not on everyone; then free child slots; the
// jitter (0..scoreJitter) breaks near-ties at random so the overlay becomes a random graph.
const W_AGENT = 3;
const W_LOAD = 2;

/** Bag slots (Member.bagPos): a member sits in its task's `all` bag and one bag per locality level. */
const BAG_ALL = 0;
const BAG_DC = 1;
const BAG_ZONE = 2;
const BAG_RACK = 3;

/** Share of the sample drawn from the same rack, zone, dc, and anywhere (unused share carries on). */
const TIER_SHARE = [0.4, 0.3, 0.15, 0.15] as const;

export function newTask(digest: Digest, now: number): Task {
  return {
    digest,
    members: new Map(),
    all: new Bag(BAG_ALL),
    byDc: new Map(),
    byZone: new Map(),
    byRack: new Map(),
    agents: 0,
    done: 0,
    blocked: new Set(),
    failedSeeds: new Map(),
    bts: new Set(),
    btsTotal: 0,
    lastActive: now,
  };
}

/** An agent can serve pieces once it is done, holds some, or is attached to parents that feed it. */
function servable(m: Member): boolean {
  if (m.state === 'done') return true;
  if (m.state === 'failed' || m.state === 'left') return false;
  return m.completed > 0 || m.parents.length > 0;
}

/**
 * Keeps the invariant: an agent member is in its task's bags iff it is servable, has a free child
 * slot, is not removed and not blocklisted. Sampling then rarely draws a useless candidate, even
 * in the first seconds of a 10k-peer burst when most peers have nothing yet.
 */
export function syncBags(m: Member): void {
  const t = m.task;
  const should = !m.removed && m.peer.info.role === 'agent' && servable(m) && m.children < m.peer.cap && !(t.blocked.size > 0 && t.blocked.has(m.peer.info.id));
  if (should === m.bagged) return;
  if (should) {
    const { dc, zone, rack } = m.peer.keys;
    const bags = (m.bags ??= [bagAt(t.byDc, dc, BAG_DC), bagAt(t.byZone, zone, BAG_ZONE), bagAt(t.byRack, rack, BAG_RACK)]);
    t.all.add(m);
    for (const b of bags) b.add(m);
    m.bagged = true;
  } else {
    dropFromBags(m);
  }
}

/** Takes `m` out of the bags under its current keys (before its peer's labels change). */
export function dropFromBags(m: Member): void {
  if (!m.bagged) return;
  m.task.all.delete(m);
  for (const b of m.bags!) b.delete(m);
  m.bagged = false;
}

function bagAt(map: Map<string, Bag<Member>>, key: string, slot: number): Bag<Member> {
  let b = map.get(key);
  if (!b) map.set(key, (b = new Bag(slot)));
  return b;
}

/** Drops every parent assignment of `m` (it finished, failed, left or expired). */
export function releaseParents(m: Member): void {
  const parents = m.parents;
  m.parents = [];
  for (const p of parents) release(p);
  syncBags(m);
}

/** Frees one child slot of parent `p` (an assignment ended) and re-files it in the bags. */
export function release(p: Member): void {
  if (p.children > 0) p.children--;
  syncBags(p);
}

/** The smallest exclusion map worth sweeping for expired entries (reports.ts). */
export const EXCLUDED_SWEEP_MIN = 32;

/** A new membership of `peer` in `task`, filed in both (not in any bag yet). */
export function newMember(task: Task, peer: PeerRec, state: Member['state']): Member {
  const m: Member = { peer, task, state, completed: 0, children: 0, parents: [], bagged: false, removed: false, seenBy: 0, bagPos: [-1, -1, -1, -1], bags: null, excludedSweepAt: EXCLUDED_SWEEP_MIN };
  task.members.set(peer.info.id, m);
  peer.members.set(task.digest, m);
  return m;
}

/** A seed's membership in a task, created on first use so its child count is tracked like anyone's. */
export function seedMember(task: Task, seed: PeerRec): Member {
  return task.members.get(seed.info.id) ?? newMember(task, seed, 'done');
}

/** Whether `p` may be (or stay) a parent of `child` now, ignoring its child cap. */
export function canServe(ctx: SwarmContext, p: Member, child: Member, now: number): boolean {
  if (p === child || p.removed) return false;
  const peer = p.peer;
  const id = peer.info.id;
  const task = p.task;
  // Without the seed's piece digests nobody can verify a piece, so nobody is a parent yet.
  if (!task.manifest || !isAvailable(peer, now) || (task.blocked.size > 0 && task.blocked.has(id))) return false;
  const until = child.excluded?.get(peer);
  if (until !== undefined && until > now) return false;
  if (peer.info.role === 'seed') return ctx.holders.get(task.digest)?.has(peer) ?? false;
  return servable(p);
}

/** Alive (heard from within its TTL) and not cooling down. */
function isAvailable(peer: PeerRec, now: number): boolean {
  return peer.deadline >= now && peer.cooldownUntil <= now;
}

/**
 * Whether a child may only be handed seeds of its own data centre: yes when an available one holds
 * the blob. A seed in another DC scores as far ahead as the home one, and once the home seed's
 * child slots were taken it beat every empty peer nearby: in a 4-DC rollout the first DC's late
 * announcers took the other DCs' seeds before those DCs' own agents asked (agents announce in
 * index order, a DC at a time), and each DC's first second ramped 2.5x slower than a lone DC's.
 * Without the rule the simulated 10,000-agent fleet read 1.284x / 1.3126x the bound (seeds 42 /
 * 43), with it 1.2702x / 1.2825x (docs/sim/ramp-experiments.md).
 */
function homeSeedsOnly(holders: ReadonlySet<PeerRec>, child: PeerRec, now: number): boolean {
  for (const s of holders) if (s.loc.dc === child.loc.dc && isAvailable(s, now)) return true;
  return false;
}

/** localityLevel() on the interned keys: a rack key names its zone and dc too, so one equal id settles it. */
function sharedLevels(a: PeerRec['loc'], b: PeerRec['loc']): number {
  if (a.rack === b.rack) return 3;
  if (a.zone === b.zone) return 2;
  return a.dc === b.dc ? 1 : 0;
}

function progressOf(m: Member, total: number): number {
  if (m.peer.info.role === 'seed' || m.state === 'done') return 1;
  return total > 0 ? Math.min(1, m.completed / total) : 0;
}

function score(ctx: SwarmContext, c: Member, child: Member): number {
  const isSeed = c.peer.info.role === 'seed';
  const total = c.task.manifest?.pieceDigests.length ?? 0;
  const mine = progressOf(c, total);
  const ahead = Math.max(0, mine - progressOf(child, total));
  // A parent with no piece yet has nothing to give until its own parents feed it: it counts as
  // half a task behind, so a same-rack empty peer does not beat a farther one that has pieces.
  const empty = mine === 0 ? 0.5 : 0;
  return (
    sharedLevels(child.peer.loc, c.peer.loc) * ctx.opts.localityWeight +
    ctx.opts.progressWeight * (ahead - empty) +
    (isSeed ? 0 : W_AGENT) +
    W_LOAD * (1 - c.children / c.peer.cap) +
    ctx.opts.scoreJitter * ctx.opts.random()
  );
}

/**
 * Candidates examined for `want` new parents: sampleSize for a full set, fewer for the one or two
 * replacements a child asks for after releasing idle parents (most announces in a long rollout),
 * so the scheduler's cost per announce follows what it hands out.
 */
export function sampleSizeFor(want: number, sampleSize: number): number {
  return Math.min(sampleSize, Math.max(MIN_SAMPLE, want * SAMPLE_PER_WANTED));
}
const MIN_SAMPLE = 16;
const SAMPLE_PER_WANTED = 4;

/**
 * The members one parent choice has drawn, marked on the members themselves: a Set per announce
 * (with its hashing and garbage) was a tenth of an announce's cost in a 10,000-peer burst.
 */
class Seen {
  private static last = 0;
  private readonly id = ++Seen.last;
  has(m: Member): boolean {
    return m.seenBy === this.id;
  }
  add(m: Member): void {
    m.seenBy = this.id;
  }
}

/**
 * assignParents' working arrays, reused: a burst of 40,000 announces allocated three arrays and ~40
 * pairs each, and the scheduler's garbage collection was a tenth of its time. Emptied at use;
 * assignParents never runs inside itself.
 */
const SCRATCH = { cands: [] as Member[], order: [] as number[], scores: [] as number[] };

/** Draws up to `size` candidates, narrowest locality first; O(size). */
function sample(ctx: SwarmContext, m: Member, size: number, seen: Seen, out: Member[]): void {
  const t = m.task;
  const { dc, zone, rack } = m.peer.keys;
  const tiers = [t.byRack.get(rack), t.byZone.get(zone), t.byDc.get(dc), t.all];
  let carry = 0;
  for (let i = 0; i < tiers.length; i++) {
    const quota = Math.round(size * TIER_SHARE[i]!) + carry;
    const before = out.length;
    tiers[i]?.sample(quota, ctx.opts.random, seen, out);
    carry = quota - (out.length - before);
  }
}

/**
 * Hands `m` up to `want` new parents (the downloader asks for "wantParents - parents it still
 * has"; 0 is a progress report). Assignments stay recorded until the child reports the parent,
 * finishes, leaves or expires; parents that died, cooled down or were blocklisted meanwhile are
 * released here. Every assignment counts against the parent's cap, and a parent at its cap is
 * never picked. Returns only the new parents.
 */
export function assignParents(ctx: SwarmContext, m: Member, want: number, now: number): Member[] {
  const kept: Member[] = [];
  for (const p of m.parents) {
    if (canServe(ctx, p, m, now)) kept.push(p);
    else release(p);
  }
  m.parents = kept;
  const added: Member[] = [];
  if (want > 0 && m.task.manifest) {
    const seen = new Seen();
    for (const p of kept) seen.add(p);
    seen.add(m);
    const cands = SCRATCH.cands;
    cands.length = 0;
    const size = sampleSizeFor(want, ctx.opts.sampleSize);
    sample(ctx, m, size, seen, cands);
    const holders = ctx.holders.get(m.task.digest);
    if (holders) {
      const home = homeSeedsOnly(holders, m.peer, now);
      for (const s of holders) {
        if (home && s.loc.dc !== m.peer.loc.dc) continue;
        const sm = seedMember(m.task, s);
        if (!seen.has(sm)) {
          seen.add(sm);
          cands.push(sm);
        }
      }
    }
    // Indices into cands of the servable ones, and their scores by index.
    const order = SCRATCH.order;
    const scores = SCRATCH.scores;
    order.length = 0;
    const consider = (from: number) => {
      for (let i = from; i < cands.length; i++) {
        const c = cands[i]!;
        if (c.children < c.peer.cap && canServe(ctx, c, m, now)) {
          scores[i] = score(ctx, c, m);
          order.push(i);
        }
      }
    };
    consider(0);
    // Dead or cooling-down candidates are only weeded out lazily; if they crowded the sample,
    // draw half a sample more from the whole swarm (still O(sampleSize)).
    if (order.length < want && m.task.all.size > cands.length) {
      const from = cands.length;
      m.task.all.sample(Math.ceil(size / 2), ctx.opts.random, seen, cands);
      consider(from);
    }
    // A stable sort by score, as the {candidate, score} pairs it replaces were sorted.
    order.sort((a, b) => scores[b]! - scores[a]!);
    for (let i = 0; i < want && i < order.length; i++) {
      const p = cands[order[i]!]!;
      p.children++;
      syncBags(p);
      kept.push(p);
      added.push(p);
      ctx.stats.parentsHandedOut++;
    }
    cands.length = 0;
    // A child that drops parents without reporting them would otherwise pin their slots: keep
    // at most maxParents + 2 assignments (the downloader's own bound), oldest released first.
    const limit = ctx.opts.maxParents + 2;
    if (kept.length > limit) for (const p of kept.splice(0, kept.length - limit)) release(p);
  }
  syncBags(m);
  return added;
}
