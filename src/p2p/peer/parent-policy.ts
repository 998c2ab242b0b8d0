// When a downloader lets a parent go and when it asks the scheduler for more: pure rules, shared
// by TaskDownloader and the fleet simulator's thin engine so both follow the same policy.
//
// Why idle parents are released: the scheduler hands out parents when a child starts, when
// nobody has much yet; a parent whose pieces the child already holds (or gets elsewhere) keeps a
// child slot of that parent busy and gives the child nothing. Kraken closes connections idle for
// 30 s and re-announces every 3 s; here a parent unused for idleParentMs that offers nothing we
// lack is released (no fault: `releasedParents`, not `badPeers`) and replaced on a near announce.
import type { PieceSet } from './picker.js';
import { localityLevel, type Locality, type PeerInfo } from '../protocol.js';

export interface ParentUsage {
  /** Last time a request to it started or a piece from it landed (or when it was added). */
  usedAt: number;
  /** Requests to it in flight now. */
  active: number;
  /** Its pieces as we last saw them; null before its first bitfield. */
  pieces: PieceSet | null;
  /** "busy" answers from it in a row (reset by a piece from it). */
  busy: number;
}

export interface IdleCheck {
  now: number;
  /** 0 disables releasing. */
  idleMs: number;
  have: PieceSet;
  numPieces: number;
  /** Pieces requested from someone now (they are covered, whoever has them). */
  inFlight: { has(piece: number): boolean };
  /** Never release below this many parents. */
  keep: number;
  /** Release a parent after this many "busy" answers in a row (nothing in flight to it); 0 = never. */
  busyRelease: number;
}

/** Whether `pieces` holds a piece we lack that nobody is fetching for us. O(numPieces). */
export function offersSomething(pieces: PieceSet, have: PieceSet, numPieces: number, inFlight: { has(piece: number): boolean }): boolean {
  for (let i = 0; i < numPieces; i++) if (pieces.has(i) && !have.has(i) && !inFlight.has(i)) return true;
  return false;
}

/**
 * The parents to release now, with nothing in flight to them and either
 * - unused for idleMs with nothing to offer (a parent unused that long which does offer something,
 *   because we were busy elsewhere, is marked used now, so the O(pieces) test runs at most once per
 *   idleMs per parent), or
 * - "busy" busyRelease times in a row: its upload slots go to its other children, and it holds a
 *   child slot the scheduler could give to one it can serve. Traced in the simulator: agents that
 *   announced first got parents only among the few peers that had announced before them (other
 *   racks, soon full), kept all 16 of them through the rollout while the busy back-off grew to
 *   4x, and finished last (docs/sim/ramp-experiments.md).
 * The most recently used parents are kept, `keep` of them at least.
 */
export function idleParents<T extends ParentUsage>(parents: Iterable<T>, c: IdleCheck): T[] {
  if (c.idleMs <= 0 && c.busyRelease <= 0) return [];
  // One pass, allocating only once an idle parent turns up: most turns (of the downloader, and of
  // the simulator's millions) find none.
  let count = 0;
  let idle: T[] | null = null;
  for (const p of parents) {
    count++;
    if (p.active > 0) continue;
    if (c.busyRelease > 0 && p.busy >= c.busyRelease) {
      (idle ??= []).push(p);
      continue;
    }
    if (c.idleMs <= 0 || c.now - p.usedAt < c.idleMs) continue;
    if (p.pieces && offersSomething(p.pieces, c.have, c.numPieces, c.inFlight)) p.usedAt = c.now;
    else (idle ??= []).push(p);
  }
  if (!idle) return [];
  const spare = Math.max(0, count - c.keep);
  if (idle.length <= spare) return idle;
  // Keep the most recently used of the idle ones, and look at them again only idleMs from now.
  idle.sort((a, b) => a.usedAt - b.usedAt);
  for (const p of idle.slice(spare)) p.usedAt = c.now;
  return idle.slice(0, spare);
}

/**
 * How long a parent may go unused before it counts as idle: idleParentMs, or three piece-times
 * when pieces take longer (a 4 MiB piece over a 6 Mbit/s link takes 6 s; a parent that has
 * nothing new after 2 s is then just between pieces, and swapping it only churns). `pieceMs` is
 * the recent time a piece took from request to landing, or the age of the oldest request in
 * flight before any landed (a lower bound); 0 when unknown.
 */
export function idleLimitMs(idleParentMs: number, pieceMs: number): number {
  if (idleParentMs <= 0) return 0;
  return Math.max(idleParentMs, 3 * pieceMs);
}

/**
 * How long to leave a parent alone after "busy" (all its upload slots taken): busyBackoffMs, or a
 * tenth of a piece-time when pieces are slow (its slots free up about a piece-time apart), doubled
 * for each "busy" in a row from that parent (`streak`, 1 for the first), up to 4 x that: a
 * parent whose slots stay full is asked less and less often instead of a few times a second by
 * every child (503 storms cost its server CPU). A piece from it resets the streak.
 */
export function busyPauseMs(busyBackoffMs: number, pieceMs: number, streak = 1): number {
  const base = Math.max(busyBackoffMs, pieceMs / 10);
  return Math.min(base * 2 ** Math.max(0, Math.min(streak - 1, 10)), 4 * base);
}

/**
 * Records a "busy" answer from parent `p`: pauses it (busyPauseMs) and, unless it is a seed, adds
 * to its busy streak. A seed serves each child one piece at a time (uploadsPerChildFor), so its
 * "busy" often means "you have one in flight here already", not "full": counted, four of them
 * released the seed (busyReleaseStreak) and its pieces with it, and the 2,500-agent fleet's last
 * agents came 1.5 s after the median (1.45x the bound, against 1.27x with seeds exempt).
 */
export function recordBusy(p: { busy: number; pausedUntil: number }, fromSeed: boolean, now: number, busyBackoffMs: number, pieceMs: number): void {
  if (!fromSeed) p.busy++;
  p.pausedUntil = now + busyPauseMs(busyBackoffMs, pieceMs, fromSeed ? 1 : p.busy);
}

/**
 * How near a parent is, for the picker's choice among holders of a piece with equally many free
 * slots (picker.ts bestHolder): the locality levels it shares with us (3 = same rack), and 0 for a
 * seed, asked last among equals so that its slots go to the pieces only it holds.
 */
export function parentNearness(self: Locality, parent: PeerInfo): number {
  return parent.role === 'seed' ? 0 : localityLevel(self, parent.labels);
}

/** Exponentially weighted mean of piece times (weight 1/4 for the newest); the first sample is taken as is. */
export function nextPieceMs(prev: number, sample: number): number {
  return prev > 0 ? prev + (sample - prev) / 4 : sample;
}

/** When the next idle check is due (Infinity if never). */
export function nextIdleCheckAt(parents: Iterable<ParentUsage>, idleMs: number): number {
  if (idleMs <= 0) return Infinity;
  let t = Infinity;
  for (const p of parents) if (p.active === 0 && p.usedAt + idleMs < t) t = p.usedAt + idleMs;
  return t;
}

export interface AnnounceState {
  announcedOnce: boolean;
  lastAnnounceAt: number;
  intervalMs: number;
  /** Parents lost (dropped for a fault) and released (idle) since the last announce. */
  lost: number;
  released: number;
  active: number;
  minParents: number;
  wantParents: number;
  earlyGapMs: number;
  /** This interval's share of the release spread (releaseSpreadMs), drawn once per announce; default 0. */
  releaseDelayMs?: number;
}

/**
 * The delay a release-driven early announce adds after the half interval: `u` in [0, 1) of
 * min(spreadMs, interval / 2). A fleet that started in one instant releases idle parents in one
 * instant too, and its early announces all landed half an interval after the first announce: at
 * 10,000 agents x 4 layers, 17.5k of them in one 250 ms window, the scheduler's busiest second.
 */
export function releaseDelayMs(u: number, intervalMs: number, spreadMs: number): number {
  return u * Math.max(0, Math.min(spreadMs, intervalMs / 2));
}

/**
 * The release delay for the interval an announce reply just began: the scheduler's `swapSpreadMs`
 * (sent only while it is over its announce budget), capped by the peer's own `capMs`. A random
 * number is drawn only when there is a spread, so a fleet within budget draws none.
 */
export function drawReleaseDelay(rng: () => number, intervalMs: number, capMs: number, swapSpreadMs: number | undefined): number {
  const spread = Math.min(capMs, swapSpreadMs ?? 0);
  return spread > 0 ? releaseDelayMs(rng(), intervalMs, spread) : 0;
}

/**
 * When an early announce (asking for replacements) may go out, or null if none is needed:
 * - after losing parents to faults, once below minParents, earlyGapMs after the last announce;
 * - after releasing parents, once below wantParents, half an interval after the last one
 *   (never sooner than earlyGapMs) plus releaseDelayMs: swaps then cost at most twice the
 *   announces the scheduler asked for, and the scheduler still sheds load by raising the interval;
 * - after releasing parents down to under half of wantParents, earlyGapMs after the last one
 *   (plus the same releaseDelayMs): a download left with a few parents, all busy or with nothing
 *   for it, is starving, and at 10,000 agents (a 5 s interval) half an interval was 2.5 s of a layer
 *   at a standstill while its host's other layers ran (docs/sim/ramp-experiments.md). The cost:
 *   the 10k fleet releases idle parents together 2 s in, past the gap, so ~39k announces land in
 *   its third second (~1 core-second of scheduler, the spread or not); spreading them from the
 *   release over more than a second is the open fix.
 */
export function earlyAnnounceAt(s: AnnounceState): number | null {
  if (!s.announcedOnce) return null;
  let t: number | null = null;
  if (s.lost > 0 && s.active < s.minParents) t = s.lastAnnounceAt + Math.min(s.intervalMs, s.earlyGapMs);
  if (s.released > 0 && s.active < s.wantParents) {
    const starving = s.active < s.wantParents / 2;
    const at = s.lastAnnounceAt + Math.min(s.intervalMs, (starving ? s.earlyGapMs : Math.max(s.earlyGapMs, s.intervalMs / 2)) + (s.releaseDelayMs ?? 0));
    t = t === null ? at : Math.min(t, at);
  }
  return t;
}
