// Reports of unreachable/slow/refused parents. One peer's report only excludes the parent for
// that reporter (its own network may be the problem); reports of unreachable/refused from
// `reportThreshold` distinct peers within `reportWindowMs` mean the parent is the problem, and it
// cools down for everyone. "slow" never cools a parent down: a seed or agent serving many children
// at its uplink's rate is busy, not broken, and cooling it would take it from everyone at once.
// Released parents (idle, no fault) only free their slot and stay away from that child briefly.
import type { Digest } from '../../oci/digest.js';
import type { BadPeerReport } from '../protocol.js';
import type { Member, PeerRec, SchedulerCoreOptions, SchedulerStats } from './model.js';
import { EXCLUDED_SWEEP_MIN, release, syncBags } from './swarm.js';

/** At most this many reports are read from one announce. */
const MAX_REPORTS = 64;

export class ReportBook {
  /** reported peer id -> reporter id -> time of its latest report */
  private readonly byTarget = new Map<string, Map<string, number>>();

  constructor(private readonly opts: Pick<SchedulerCoreOptions, 'reportWindowMs' | 'reportThreshold'>) {}

  /** Records a report; true when it takes the target over the threshold (the record then starts afresh). */
  add(target: string, reporter: string, now: number): boolean {
    let reporters = this.byTarget.get(target);
    if (!reporters) this.byTarget.set(target, (reporters = new Map()));
    reporters.set(reporter, now);
    const since = now - this.opts.reportWindowMs;
    let recent = 0;
    for (const [id, at] of reporters) {
      if (at < since) reporters.delete(id);
      else recent++;
    }
    if (recent < this.opts.reportThreshold) return false;
    this.byTarget.delete(target);
    return true;
  }

  prune(now: number): void {
    const since = now - this.opts.reportWindowMs;
    for (const [target, reporters] of this.byTarget) {
      for (const [id, at] of reporters) if (at < since) reporters.delete(id);
      if (reporters.size === 0) this.byTarget.delete(target);
    }
  }

  get size(): number {
    return this.byTarget.size;
  }
}

export interface ReportContext {
  opts: Pick<SchedulerCoreOptions, 'reporterExcludeMs' | 'cooldownMs' | 'releaseExcludeMs'>;
  peers: Map<string, PeerRec>;
  holders: Map<Digest, Set<PeerRec>>;
  book: ReportBook;
  counters: Pick<SchedulerStats, 'badPeerReports' | 'blocklistings' | 'cooldowns'>;
  onBlocklisted(): void;
}

/**
 * Applies the bad-parent reports of one announce: the parent is dropped from the reporter's set
 * (its replacement is picked in the same announce) and excluded for the reporter; a corrupt piece
 * blocklists it for the whole task; other reasons count towards a cool-down for everyone.
 */
export function applyReports(ctx: ReportContext, m: Member, reports: readonly BadPeerReport[], now: number): void {
  const task = m.task;
  const reporter = m.peer.info.id;
  for (const r of reports.slice(0, MAX_REPORTS)) {
    if (r.peerId === reporter) continue;
    const target = ctx.peers.get(r.peerId);
    // Only peers of this swarm can be reported (an unknown id would only grow our maps).
    const tm = task.members.get(r.peerId);
    if (!target || !(tm || ctx.holders.get(task.digest)?.has(target))) continue;
    ctx.counters.badPeerReports++;
    dropParent(m, target);
    (m.excluded ??= new Map()).set(target, now + ctx.opts.reporterExcludeMs);
    if (r.reason === 'corrupt-piece') {
      // A piece that fails its sha256 came from a liar or a broken disk: nobody gets it again.
      if (!task.blocked.has(r.peerId)) {
        task.blocked.add(r.peerId);
        ctx.onBlocklisted();
        ctx.counters.blocklistings++;
        if (tm) syncBags(tm);
      }
    } else if (r.reason !== 'slow' && ctx.book.add(r.peerId, reporter, now)) {
      target.cooldownUntil = now + ctx.opts.cooldownMs;
      ctx.counters.cooldowns++;
    }
  }
}

/** Frees the slots of parents `m` let go of as idle; they are not handed back to `m` for releaseExcludeMs. */
export function applyReleases(ctx: ReportContext, m: Member, ids: readonly string[], now: number): void {
  const exclude = ctx.opts.releaseExcludeMs > 0;
  // A long download releases parents over and over: forget exclusions that ran out, but only when
  // the map has doubled since the last sweep (a rollout shorter than the exclusion expires none, and
  // a sweep on every announce walked 32+ live entries each time).
  if (exclude && m.excluded && m.excluded.size >= m.excludedSweepAt) {
    for (const [k, until] of m.excluded) if (until <= now) m.excluded.delete(k);
    m.excludedSweepAt = Math.max(EXCLUDED_SWEEP_MIN, 2 * m.excluded.size);
  }
  // Slots are freed in the order given (bag order, and so later samples, follow it); a released
  // parent's place in the list is nulled and the list compacted once at the end, in place, instead
  // of spliced per id (a burst releases 15 at a time).
  const parents = m.parents as Array<Member | null>;
  let dropped = 0;
  const n = Math.min(ids.length, MAX_REPORTS);
  for (let i = 0; i < n; i++) {
    const target = ctx.peers.get(ids[i]!);
    if (!target) continue;
    let j = 0;
    while (j < parents.length && parents[j]?.peer !== target) j++;
    if (j === parents.length) continue;
    release(parents[j]!);
    parents[j] = null;
    dropped++;
    if (exclude) (m.excluded ??= new Map()).set(target, now + ctx.opts.releaseExcludeMs);
  }
  if (dropped > 0) {
    let w = 0;
    for (let j = 0; j < parents.length; j++) if (parents[j]) parents[w++] = parents[j]!;
    parents.length = w;
  }
}

/** Removes `target` from m's recorded parents and frees its child slot; false if it was not one. */
function dropParent(m: Member, target: PeerRec): boolean {
  const idx = m.parents.findIndex((p) => p.peer === target);
  if (idx === -1) return false;
  release(m.parents.splice(idx, 1)[0]!);
  return true;
}
