// The "thin" engine: per agent and layer, a synchronous loop that follows TaskDownloader's rules
// (src/p2p/peer/downloader.ts) step for step, with the REAL PiecePicker choosing every piece and
// the REAL SchedulerCore (through SimScheduler) answering every announce. It exists because the
// real TaskDownloader costs ~0.3-0.5 ms of CPU per piece in virtual time (its AbortControllers,
// long polls and promise chains), which is ~15 minutes for 10,000 nodes x 256 pieces; this loop
// costs a few µs per piece. What differs from the real one, on purpose:
//  - a parent's bitfield is read live (the real one long-polls it: one RTT later);
//  - announces are answered at once (no HTTP round trip);
//  - piece timeouts are checked at the loop's deadlines instead of one timer per request.
// The rules kept: wantParents/minParents/maxParents, early announce after losing parents, idle
// parents (and parents that answer only "busy") released and replaced (the same
// ../../p2p/peer/parent-policy.ts functions), bans,
// reports (badPeers), busy back-off, three not-founds, per-parent and global in-flight limits,
// byte budget, piece timeout, stall timeout, endgame (picker) with losers cancelled, back-to-source.
// test/unit/sim and docs/sim/REPORT.md compare it with the downloader engine on the same fleet.
import type { AnnounceResponse, BadPeerReport, PeerInfo, TaskState } from '../../p2p/protocol.js';
import { isLagging, PiecePicker, type PickerParent } from '../../p2p/peer/picker.js';
import { inFlightShare, pieceTimeoutMs, stallLimitMs } from '../../p2p/peer/download-options.js';
import { pieceBounds } from '../../p2p/peer/manifest.js';
import type { Bitfield } from '../../p2p/peer/bitfield.js';
import { seededRandom } from '../../p2p/scheduler/random.js';
import type { TransportErrorKind } from '../../p2p/peer/errors.js';
import type { SeedView } from '../../p2p/peer/seed-view.js';
import type { Holding, Layer, LayerOutcome, PeerEngine, PieceRequest, SimHost, World } from '../world.js';
import { downloaderDefaults, TRANSPORT_IDLE_TIMEOUT_MS, type DownloaderKnobs } from './knobs.js';
import { type AnnounceState, parentNearness, recordBusy, earlyAnnounceAt, idleLimitMs, idleParents, nextIdleCheckAt, nextPieceMs, drawReleaseDelay } from '../../p2p/peer/parent-policy.js';

interface TParent {
  host: SimHost;
  /** parentNearness: the picker's tie-break among holders. */
  near: number;
  id: string;
  limit: number;
  /** The parent's holding of this layer: its live bitfield is our view of it. */
  holding: Holding;
  pausedUntil: number;
  busy: number;
  notFound: number;
  /** parent-policy's view: its live bitfield, last use, requests in flight. */
  pieces: Bitfield;
  usedAt: number;
  active: number;
  /** The download this record belongs to, and the record's place in its holding's Children. */
  child: ThinDownload;
  slot: number;
  /** The child's ThinDownload.bits: the walk over a landed piece's children reads and writes it. */
  bits: Uint8Array;
  /** Where this parent's copy of its bitfield sits in `bits` (PickerParent.bitsAt). */
  bitsAt: number;
}

let walkCheck = false;
/** With walkCheck: times a download that could request had a paused parent, whose pause end then had to be on its timer. */
let pauseTimerChecks = 0;

/**
 * Tests: make the walk over a landed piece's children check every child it skips against the
 * child's own state, every pick check the parents' bitfield copies it reads, and every turn check
 * that a download that can request has its timer set no later than its paused parents' pause
 * ends. Returns how many such paused parents were checked since the last call.
 */
export function checkThinWalk(on: boolean): number {
  walkCheck = on;
  const n = pauseTimerChecks;
  pauseTimerChecks = 0;
  return n;
}

/**
 * A holding's children (holding.listeners): the parent record of every download that has the
 * holding's host as a parent. An array with holes rather than a Map keyed by download: every
 * landed piece visits the ~20 children of its holder, millions of times at 10,000 nodes, and an
 * array walk costs less than a Map iterator. It keeps the Map's order (subscription order; a
 * re-added parent goes last), so runs stay identical. Holes are squeezed out once they are half
 * the array, never during a walk.
 */
class Children {
  private recs: Array<TParent | null> = [];
  private holes = 0;
  private walking = false;

  /** `wantBytes`: the layer's bitfield length, where every child's "could request" byte sits in its `bits`. */
  constructor(private readonly wantBytes: number) {}

  add(p: TParent): void {
    p.slot = this.recs.length;
    this.recs.push(p);
  }

  delete(p: TParent): void {
    if (p.slot < 0 || this.recs[p.slot] !== p) return;
    this.recs[p.slot] = null;
    p.slot = -1;
    if (++this.holes > 8 && this.holes * 2 > this.recs.length && !this.walking) this.squeeze();
  }

  /**
   * Tells each child that the parent got piece `index` (children added meanwhile are told too, as
   * a Map iterator would), first in the child's copy of this parent's bitfield, which its picker
   * reads (no pick runs between a piece landing and this walk: requests answer after an RTT).
   * Only ~1 % of children can act on it (1,000-agent proxy: 46 % hold the
   * piece, 32 % have no request budget, 11 % find this parent full or paused, 10 % have the piece
   * in flight), so they are sorted out here from the parent record and one byte array, without
   * reading the child's own state (its Bitfield, Maps and Set: cache misses, 40 million walks at
   * 10,000 nodes).
   */
  pieceLanded(index: number, now: number): void {
    this.walking = true;
    const recs = this.recs;
    const at = index >> 3;
    const mask = 0x80 >> (index & 7);
    const flag = this.wantBytes;
    for (let i = 0; i < recs.length; i++) {
      const p = recs[i];
      if (!p) continue;
      const bits = p.bits;
      bits[p.bitsAt + at]! |= mask;
      if (p.active >= p.limit || p.pausedUntil > now) continue;
      if ((bits[at]! & mask) === 0 || bits[flag] === 0) {
        if (walkCheck && p.child.couldRequest(index)) throw new Error(`thin engine: the walk skipped ${p.child.host.id}, which could request piece ${index}`);
        continue;
      }
      p.child.parentHas(index, p);
    }
    this.walking = false;
  }

  /**
   * A super-seeding parent's view changed (view.changed): each child's copy follows it, and a
   * child that can use a piece now shown gets a turn, as in pieceLanded.
   */
  viewChanged(view: SeedView, now: number): void {
    // A copy: a turn given here can end a request whose freed slot starts another upload, and so
    // change the view (and its `changed`) before this walk is over; that change walks on its own.
    const changed = view.changed.slice();
    const nested = this.walking;
    this.walking = true;
    const recs = this.recs;
    // Every copy first, then the turns: a turn reads its parents' copies.
    for (const p of recs) {
      if (!p) continue;
      p.pieces = view.visible;
      for (const index of changed) {
        const at = p.bitsAt + (index >> 3);
        const mask = 0x80 >> (index & 7);
        if (view.visible.has(index)) p.bits[at]! |= mask;
        else p.bits[at]! &= ~mask;
      }
    }
    const flag = this.wantBytes;
    for (let i = 0; i < recs.length; i++) {
      const p = recs[i];
      if (!p || p.active >= p.limit || p.pausedUntil > now || p.bits[flag] === 0) continue;
      for (const index of changed) {
        if (!view.visible.has(index) || (p.bits[index >> 3]! & (0x80 >> (index & 7))) === 0) continue;
        p.child.parentHas(index, p);
        break;
      }
    }
    this.walking = nested;
  }

  downloads(): ThinDownload[] {
    const out: ThinDownload[] = [];
    for (const p of this.recs) if (p) out.push(p.child);
    return out;
  }

  private squeeze(): void {
    let n = 0;
    for (const p of this.recs) {
      if (!p) continue;
      p.slot = n;
      this.recs[n++] = p;
    }
    this.recs.length = n;
    this.holes = 0;
  }
}

/** A request in flight: everything settling it needs, so that it looks nothing up. */
interface Live {
  req: PieceRequest;
  parent: TParent;
  piece: number;
  /** The piece's length (what the byte budget counts). */
  bytes: number;
  /** The parent ids asked for this piece: inFlight's value for it while any request for it is in flight. */
  ids: Set<string>;
  deadline: number;
  startedAt: number;
  /** Where it sits in ThinDownload.reqs; -1 once settled. */
  at: number;
}

export class ThinEngine implements PeerEngine {
  readonly name = 'thin' as const;
  readonly k: DownloaderKnobs;
  private readonly running = new Map<SimHost, Set<ThinDownload>>();
  /** Scratch for ThinDownload.schedule (one turn runs at a time). */
  readonly candidates: PickerParent[] = [];
  /**
   * Emptied per-piece sets of parent ids, for the next piece requested: a new Set per piece
   * (millions) outlives several young-generation cycles, so each was copied by the scavenger and
   * promoted (1,000-agent proxy: 18 % fewer bytes survive scavenges with these reused, 13 % less
   * scavenge time). An emptied one iterates as a new one would.
   */
  readonly spareIds: Array<Set<string>> = [];

  constructor(readonly world: World) {
    this.k = downloaderDefaults(world.downloaderOptions);
  }

  start(host: SimHost, layer: Layer, done: (r: LayerOutcome) => void): void {
    let set = this.running.get(host);
    if (!set) this.running.set(host, (set = new Set()));
    const d = new ThinDownload(this, host, layer, set, (r) => {
      const siblings = this.running.get(host);
      siblings?.delete(d);
      // The others' share of the host's requests grew.
      if (siblings) for (const x of siblings) x.shareGrew();
      done(r);
    });
    set.add(d);
    for (const x of set) x.budgetChanged();
    d.tick();
  }

  onPiece(_host: SimHost, holding: Holding, index: number): void {
    (holding.listeners as Children | null)?.pieceLanded(index, this.world.time.now());
  }

  onView(_host: SimHost, holding: Holding): void {
    (holding.listeners as Children | null)?.viewChanged(holding.view!, this.world.time.now());
  }

  kill(host: SimHost, crash: boolean): void {
    for (const d of this.running.get(host) ?? []) d.die();
    this.running.delete(host);
    if (!crash) return;
    // Children polling its bitfield see the connection refused within half an RTT.
    for (const x of host.holdings) {
      const children = x?.listeners as Children | null;
      if (!children) continue;
      for (const c of children.downloads()) this.world.time.after(this.world.topo.rtt(host, c.host) / 2, () => c.parentGone(host.id));
    }
  }
}

class ThinDownload {
  private readonly w: World;
  private readonly k: DownloaderKnobs;
  private readonly picker: PiecePicker;
  private readonly parents = new Map<string, TParent>();
  private readonly banned = new Map<string, number>();
  /** piece -> parent ids asked (what the picker reads). */
  private readonly inFlight = new Map<number, Set<string>>();
  /**
   * The requests in flight (maxInFlight at most, a few more in endgame), in no particular order.
   * An array, not a Map by piece of Maps by parent id: settling a request was four hash lookups
   * on cold tables, the largest self time in a 2,500-agent profile (9 %).
   */
  private readonly reqs: Live[] = [];
  private nReq = 0;
  private nBytes = 0;
  private reports: BadPeerReport[] = [];
  private released: string[] = [];
  private pieceMs = 0;
  /**
   * No parent can turn idle before this (a lower bound, from the last nextDeadline, pulled earlier
   * when a parent is added or a request to it ends), computed with idle limit idleDueMs: most
   * turns skip the idle check, which every turn ran before.
   */
  private idleDue = -Infinity;
  private idleDueMs = 0;
  private have: Bitfield | null = null;
  /** The piece the host's client waits on (readers.ts), as TaskDownloader.setSequentialFrom keeps it. */
  private sequentialFrom: number | undefined;
  /**
   * What the walk over a landed piece's children reads and writes instead of this object's state,
   * in one array so that a turn touches little memory. Bytes [0, W) (W = the layer's bitfield
   * length; the Bitfield's bit order): bit i set while piece i is neither held nor requested.
   * Byte W: 1 while a new request could start (manifest known, budget left, not ended).
   * parentHas() still checks the real state; these only have to be exact in saying "can't". Then
   * one W-byte slot per parent (TParent.bitsAt): a copy of its bitfield, for the picker
   * (PickInput.bitsArena), kept current by the walk.
   */
  readonly bits: Uint8Array;
  private readonly wantBytes: number;
  /** Parent slots in `bits` not in use. */
  private readonly freeSlots: number[] = [];
  private nextAnnounceAt = 0;
  private readonly rng: () => number;
  private readonly startedAt: number;
  private lastProgressAt: number;
  private timerAt = Infinity;
  /** Earliest piece deadline among requests in flight (lower bound; refreshed by nextDeadline). */
  private reqDeadline = Infinity;
  private timerVer = 0;
  private ended = false;
  /**
   * What parent-policy's earlyAnnounceAt() reads, kept in its own shape: that runs twice per turn,
   * millions of turns, and a copy into it each time was measurable. `active` is refreshed per call.
   */
  private readonly ann: AnnounceState;

  constructor(
    private readonly eng: ThinEngine,
    readonly host: SimHost,
    private readonly layer: Layer,
    /** The downloads its host runs now, itself included (they share the host's maxInFlight, as in TaskDownloader). */
    private readonly siblings: ReadonlySet<ThinDownload>,
    private readonly done: (r: LayerOutcome) => void,
  ) {
    this.w = eng.world;
    this.k = eng.k;
    // One stream for the picker and the release delay, as TaskDownloader shares its rng.
    this.rng = seededRandom((this.w.seed * 7919 + host.idx * 131 + layer.index) >>> 0);
    this.picker = new PiecePicker({ perParentLimit: this.k.perParentLimit, rng: this.rng });
    const w = (this.wantBytes = (layer.numPieces + 7) >> 3);
    this.bits = new Uint8Array(w + 1 + this.k.maxParents * w);
    for (let slot = this.k.maxParents - 1; slot >= 0; slot--) this.freeSlots.push(w + 1 + slot * w);
    this.startedAt = this.lastProgressAt = this.w.time.now();
    const k = this.k;
    this.ann = { announcedOnce: false, lastAnnounceAt: -Infinity, intervalMs: 3000, lost: 0, released: 0, active: 0, minParents: k.minParents, wantParents: k.wantParents, earlyGapMs: k.earlyAnnounceGapMs, releaseDelayMs: 0 };
  }

  /** One turn of TaskDownloader.run()'s loop. */
  tick(): void {
    if (this.ended) return;
    const now = this.w.time.now();
    if (this.have?.isComplete()) return this.finish('done');
    this.releaseIdle(now);
    this.maybeAnnounce(now);
    if (this.ended) return;
    if (this.have?.isComplete()) return this.finish('done');
    if (now >= this.reqDeadline) this.expireRequests(now);
    this.schedule(now);
    if (this.stalled(now)) return this.finish('failed');
    this.arm(this.nextDeadline(now));
    if (walkCheck) this.checkPauseTimer(now);
  }

  /** Tests (checkThinWalk): a download that can request is woken when a paused parent's pause ends. */
  private checkPauseTimer(now: number): void {
    if (this.ended || this.budget() <= 0) return;
    for (const p of this.parents.values()) {
      if (p.pausedUntil <= now) continue;
      pauseTimerChecks++;
      if (this.timerAt > p.pausedUntil) throw new Error(`thin engine: ${this.host.id} can request but sleeps until ${this.timerAt}, past ${p.id}'s pause end ${p.pausedUntil}`);
    }
  }

  // --- scheduler -----------------------------------------------------------------------------

  private maybeAnnounce(now: number): void {
    const early = this.earlyAt();
    if (now < this.nextAnnounceAt && !(early !== null && early <= now)) return;
    const a = this.ann;
    const first = !a.announcedOnce;
    const res = this.announce(first ? 'started' : 'downloading', first ? this.k.wantParents : Math.max(0, this.k.wantParents - this.parents.size));
    a.announcedOnce = true;
    a.lastAnnounceAt = now;
    a.lost = 0;
    a.released = 0;
    a.intervalMs = Math.max(100, res.announceIntervalMs);
    this.nextAnnounceAt = now + a.intervalMs;
    a.releaseDelayMs = drawReleaseDelay(this.rng, a.intervalMs, this.k.releaseSpreadMs, res.swapSpreadMs);
    if (res.backToSource && !this.have?.isComplete()) return this.finish('back-to-source');
    if (res.pieces && !this.have) {
      const x = this.w.holding(this.host, this.layer);
      const have = (this.have = x.bf);
      // As swarm-jobs.ts: the task exists now, so a waiting reader reaches the downloader.
      if (x.readAt >= 0 && x.readAt < this.layer.numPieces) this.sequentialFrom = x.readAt;
      x.onReaderWait = (i) => {
        this.sequentialFrom = i;
        if (!this.ended) this.schedule(this.w.time.now());
      };
      this.lastProgressAt = now;
      for (let i = 0; i < this.layer.numPieces; i++) if (!have.has(i) && !this.inFlight.has(i)) this.wantPiece(i, true);
      this.budgetChanged();
    }
    for (const p of res.parents) this.addParent(p, now);
  }

  private announce(state: TaskState, wantParents: number): AnnounceResponse {
    const badPeers = this.reports;
    const released = this.released;
    this.reports = [];
    this.released = [];
    return this.w.sched!.announce({
      peer: this.host.info,
      task: { digest: this.layer.digest, size: this.layer.size, repo: 'sim/app' },
      state,
      completedPieces: this.have?.count ?? 0,
      wantParents,
      ...(badPeers.length > 0 ? { badPeers } : {}),
      ...(released.length > 0 ? { releasedParents: released } : {}),
    });
  }

  private earlyAt(): number | null {
    this.ann.active = this.parents.size;
    return earlyAnnounceAt(this.ann);
  }

  /** TaskDownloader.idleMs(). */
  private idleMs(now: number): number {
    let oldest = 0;
    if (this.pieceMs === 0) for (const e of this.reqs) oldest = Math.max(oldest, now - e.startedAt);
    return idleLimitMs(this.k.idleParentMs, this.pieceMs || oldest);
  }

  /** TaskDownloader.releaseIdleParents(). */
  private releaseIdle(now: number): void {
    const have = this.have;
    if (!have || (this.k.idleParentMs <= 0 && this.k.busyReleaseStreak <= 0) || have.isComplete()) return;
    const idleMs = this.idleMs(now);
    // A shorter limit than the bound was computed with invalidates it.
    if (now < this.idleDue && idleMs >= this.idleDueMs) return;
    const idle = idleParents(this.parents.values(), { now, idleMs, have, numPieces: this.layer.numPieces, inFlight: this.inFlight, keep: 1, busyRelease: this.k.busyReleaseStreak });
    for (const p of idle) {
      this.removeParent(p);
      this.released.push(p.id);
      this.ann.released++;
    }
  }

  // --- parents -------------------------------------------------------------------------------

  private addParent(info: PeerInfo, now: number): void {
    if (info.id === this.host.id || this.parents.has(info.id)) return;
    const until = this.banned.get(info.id);
    if (until !== undefined && until > now) return;
    this.banned.delete(info.id);
    if (this.parents.size >= this.k.maxParents) return;
    const host = this.w.byId.get(info.id);
    if (!host) return;
    const holding = this.w.holding(host, this.layer);
    const bitsAt = this.freeSlots.pop()!;
    // A super-seeding seed's children see its view (read live, as every parent's bitfield here).
    const shown = holding.view?.visible ?? holding.bf;
    this.bits.set(shown.rawBytes(), bitsAt);
    const p: TParent = { host, near: parentNearness(this.host.info.labels, info), id: info.id, limit: info.role === 'seed' ? this.k.seedParentLimit : this.k.perParentLimit, holding, pausedUntil: 0, busy: 0, notFound: 0, pieces: shown, usedAt: now, active: 0, child: this, slot: -1, bits: this.bits, bitsAt };
    this.parents.set(info.id, p);
    this.idleDue = Math.min(this.idleDue, now + this.idleDueMs);
    let l = holding.listeners as Children | null;
    if (!l) holding.listeners = l = new Children(this.wantBytes);
    l.add(p);
  }

  /** Forgets a parent: our list, its holding's children, and its slot in `bits` (free for the next parent). */
  private removeParent(p: TParent): void {
    this.parents.delete(p.id);
    (p.holding.listeners as Children).delete(p);
    this.freeSlots.push(p.bitsAt);
  }

  private dropParent(p: TParent, reason: BadPeerReport['reason'], detail: string): void {
    if (this.parents.get(p.id) !== p) return;
    this.removeParent(p);
    for (const e of this.reqs.filter((x) => x.parent === p)) this.settle(e, true);
    this.reports.push({ peerId: p.id, reason, detail });
    this.banned.set(p.id, reason === 'corrupt-piece' ? Infinity : this.w.time.now() + this.k.banMs);
    this.ann.lost++;
  }

  /** A parent's bitfield poll found it gone (connection refused). */
  parentGone(id: string): void {
    const p = this.parents.get(id);
    if (!p || this.ended) return;
    this.dropParent(p, 'unreachable', 'bitfield: connection refused');
    this.tick();
  }

  /**
   * Parent `p` got piece `index`: worth a turn only if we could use it now — from that parent, since
   * nothing changed at the others. With 10+ parents of 20 children each, skipping the turns a full
   * or paused parent cannot act on keeps the picker (O(pieces x parents)) off most piece events.
   */
  parentHas(index: number, p: TParent): void {
    const now = this.w.time.now();
    if (p.active >= p.limit || p.pausedUntil > now || !this.couldRequest(index)) return;
    this.schedule(now);
  }

  /** Whether a new request for `index` could start now, from our own state (what `bits` mirrors). */
  couldRequest(index: number): boolean {
    return !this.ended && this.have !== null && !this.have.has(index) && !this.inFlight.has(index) && this.budget() > 0;
  }

  // --- pieces --------------------------------------------------------------------------------

  /**
   * A sibling download ended, so this one may start more requests: a parent whose busy pause ends
   * later needs its turn then (nextDeadline leaves pauses out while the budget is spent).
   */
  shareGrew(): void {
    this.budgetChanged();
    if (this.ended || this.budget() <= 0) return;
    const now = this.w.time.now();
    const t = this.nextPauseEnd(now);
    if (t < Infinity) this.arm(t);
    if (walkCheck) this.checkPauseTimer(now);
  }

  /** When the first busy pause still running ends (Infinity: none runs). */
  private nextPauseEnd(now: number): number {
    let t = Infinity;
    for (const p of this.parents.values()) if (p.pausedUntil > now && p.pausedUntil < t) t = p.pausedUntil;
    return t;
  }

  /** Keeps the "could request" byte current: call whenever budget(), `have` or `ended` may have changed. */
  budgetChanged(): void {
    this.bits[this.wantBytes] = !this.ended && this.have !== null && this.budget() > 0 ? 1 : 0;
  }

  private wantPiece(piece: number, on: boolean): void {
    const mask = 0x80 >> (piece & 7);
    if (on) this.bits[piece >> 3]! |= mask;
    else this.bits[piece >> 3]! &= ~mask;
  }

  private budget(): number {
    const byCount = inFlightShare(this.k.maxInFlight, this.siblings.size) - this.nReq;
    const byBytes = Math.max(this.nReq === 0 ? 1 : 0, Math.floor((this.k.maxInFlightBytes - this.nBytes) / this.layer.pieceSize));
    return Math.min(byCount, byBytes);
  }

  private schedule(now: number): void {
    const have = this.have;
    if (!have || this.ended || have.isComplete()) return;
    const budget = this.budget();
    if (budget <= 0) return;
    // A parent's record is a PickerParent (its live bitfield, its limit); the list is the engine's scratch (pick keeps neither).
    const candidates = this.eng.candidates;
    candidates.length = 0;
    for (const p of this.parents.values()) if (p.pausedUntil <= now) candidates.push(p);
    if (candidates.length === 0) return;
    if (walkCheck) this.checkParentCopies();
    const input = { numPieces: this.layer.numPieces, have, haveCount: have.count, parents: candidates, inFlight: this.inFlight, maxAssignments: budget, lagging: this.lagging, bitsArena: this.bits, ...(this.sequentialFrom !== undefined ? { sequentialFrom: this.sequentialFrom } : {}) };
    let picks = this.picker.pick(input);
    // As TaskDownloader: a lone child of a super-seeding seed, idle, asks for what the seed hides.
    if (picks.length === 0 && this.nReq === 0 && this.parents.size === 1) {
      const seeds: PickerParent[] = [];
      for (const p of candidates as TParent[]) if (p.holding.view) seeds.push({ id: p.id, pieces: p.holding.bf, limit: p.limit, near: p.near });
      if (seeds.length > 0) picks = this.picker.pick({ ...input, parents: seeds, bitsArena: undefined });
    }
    for (const a of picks) {
      const p = this.parents.get(a.parentId);
      if (p) this.fetch(a.piece, p, now);
    }
  }

  /** Tests (checkThinWalk): every parent's copy in `bits` is its live bitfield. */
  private checkParentCopies(): void {
    for (const p of this.parents.values()) {
      const live = p.pieces.rawBytes();
      for (let j = 0; j < live.length; j++) {
        if (this.bits[p.bitsAt + j] !== live[j]) throw new Error(`thin engine: ${this.host.id}'s copy of ${p.id}'s bitfield differs at byte ${j}`);
      }
    }
  }

  /** PickInput.lagging, as the TaskDownloader answers it: the piece's oldest request against pieceMs. */
  private readonly lagging = (piece: number): boolean => {
    let first: number | undefined;
    for (const e of this.reqs) if (e.piece === piece && (first === undefined || e.startedAt < first)) first = e.startedAt;
    return isLagging(first, this.w.time.now(), this.pieceMs);
  };

  private fetch(piece: number, p: TParent, now: number): void {
    const { length } = pieceBounds(this.layer, piece);
    let ids = this.inFlight.get(piece);
    if (!ids) this.inFlight.set(piece, (ids = this.eng.spareIds.pop() ?? new Set()));
    ids.add(p.id);
    p.active++;
    p.usedAt = now;
    this.nReq++;
    this.nBytes += length;
    this.wantPiece(piece, false);
    this.budgetChanged();
    const deadline = now + pieceTimeoutMs(length, this.k);
    const entry: Live = { req: null as unknown as PieceRequest, parent: p, piece, bytes: length, ids, deadline, startedAt: now, at: this.reqs.length };
    this.reqs.push(entry);
    const req = (entry.req = this.w.requestPiece(this.host, p.host, this.layer, piece, length, this.answered));
    req.tag = entry;
    // A parent that stops sending (hung) is caught by the transport's body timeout.
    req.onStall = this.stalledReq;
    if (deadline < this.reqDeadline) this.reqDeadline = deadline;
    if (deadline < this.timerAt) this.arm(deadline);
  }

  /** Every request's answer and stall (the request's tag is its Live): two functions per download, not two closures per request. */
  private readonly answered = (err: TransportErrorKind | null, req: PieceRequest): void => this.landed(req.tag as Live, err);
  private readonly stalledReq = (req: PieceRequest): void => this.stalledRequest(req.tag as Live);

  private landed(entry: Live, err: TransportErrorKind | null): void {
    const { piece, parent: p } = entry;
    this.settle(entry, false);
    if (this.ended) return;
    const now = this.w.time.now();
    if (err === null) {
      if (this.w.addPiece(this.host, this.layer, piece)) {
        this.wantPiece(piece, false);
        this.lastProgressAt = now;
        this.pieceMs = nextPieceMs(this.pieceMs, now - entry.startedAt);
        p.notFound = 0;
        p.busy = 0;
        // Endgame: the other copies of this piece lost.
        if (this.inFlight.has(piece)) for (const e of this.reqs.filter((x) => x.piece === piece)) this.settle(e, true);
      }
    } else if (err === 'not-found') {
      if (++p.notFound >= 3) this.dropParent(p, 'refused', `piece ${piece}: not found three times`);
    } else if (err === 'busy') {
      recordBusy(p, p.host.role === 'seed', now, this.k.busyBackoffMs, this.pieceMs);
      // As the downloader, which looks for parents to release on every turn: this one is due now.
      if (this.k.busyReleaseStreak > 0 && p.busy >= this.k.busyReleaseStreak) this.idleDue = now;
    } else if (err === 'refused') this.dropParent(p, 'refused', `piece ${piece}: refused`);
    else this.dropParent(p, 'unreachable', `piece ${piece}: ${err}`);
    this.tick();
  }

  /** Forgets a request (cancelling its transfer when asked). */
  private settle(entry: Live, cancel: boolean): void {
    const i = entry.at;
    if (i < 0) return;
    entry.at = -1;
    const last = this.reqs.pop()!;
    if (last !== entry) {
      this.reqs[i] = last;
      last.at = i;
    }
    const { piece, ids } = entry;
    ids.delete(entry.parent.id);
    if (ids.size === 0) {
      this.inFlight.delete(piece);
      this.eng.spareIds.push(ids);
      if (!this.have?.has(piece)) this.wantPiece(piece, true);
    }
    this.nReq--;
    entry.parent.active--;
    const now = this.w.time.now();
    entry.parent.usedAt = now;
    this.idleDue = Math.min(this.idleDue, now + this.idleDueMs);
    this.nBytes -= entry.bytes;
    this.budgetChanged();
    if (cancel) this.w.cancel(entry.req);
  }

  private stalledRequest(entry: Live): void {
    if (this.ended) return;
    const at = this.w.time.now() + TRANSPORT_IDLE_TIMEOUT_MS;
    if (at >= entry.deadline) return;
    entry.deadline = at;
    if (at < this.reqDeadline) this.reqDeadline = at;
    if (at < this.timerAt) this.arm(at);
  }

  private expireRequests(now: number): void {
    // A copy: dropping a parent settles its requests.
    for (const e of [...this.reqs]) {
      if (e.deadline <= now && this.parents.get(e.parent.id) === e.parent) this.dropParent(e.parent, 'slow', 'piece timed out');
    }
  }

  // --- timing and the end --------------------------------------------------------------------

  private stallLimit(): number {
    return stallLimitMs(this.layer.pieceSize, this.k);
  }

  private stalled(now: number): boolean {
    if (!this.have) return now - this.startedAt > this.k.manifestTimeoutMs;
    return now - this.lastProgressAt > this.stallLimit();
  }

  private nextDeadline(now: number): number {
    let t = Math.min(now + 60_000, this.nextAnnounceAt);
    const early = this.earlyAt();
    if (early !== null) t = Math.min(t, early);
    // A parent's busy pause ending matters only to a turn that can request: with the budget spent
    // (most of the time: 89 % of the turns these timers gave did nothing, 2,500-agent proxy), the
    // next request to settle runs a turn anyway, and a sibling's end calls shareGrew().
    if (this.budget() > 0) t = Math.min(t, this.nextPauseEnd(now));
    if (this.have) {
      this.idleDueMs = this.idleMs(now);
      this.idleDue = nextIdleCheckAt(this.parents.values(), this.idleDueMs);
      t = Math.min(t, Math.max(now + 1, this.idleDue));
    }
    let d = Infinity;
    for (const e of this.reqs) if (e.deadline < d) d = e.deadline;
    this.reqDeadline = d;
    t = Math.min(t, d);
    return Math.min(t, this.have ? this.lastProgressAt + this.stallLimit() + 1 : this.startedAt + this.k.manifestTimeoutMs + 1);
  }

  private arm(t: number): void {
    if (t >= this.timerAt && this.timerAt > this.w.time.now()) return;
    this.timerAt = t;
    const v = ++this.timerVer;
    this.w.time.at(t, () => {
      if (v !== this.timerVer) return;
      this.timerAt = Infinity;
      this.tick();
    });
  }

  private finish(how: 'done' | 'failed' | 'back-to-source'): void {
    if (this.ended) return;
    this.stop();
    if (how !== 'back-to-source') this.announce(how, 0);
    this.done(how === 'done' ? { kind: 'done' } : { kind: 'fallback', reason: how });
  }

  /** The host died: stop without a word (no final announce). */
  die(): void {
    if (this.ended) return;
    this.stop();
  }

  /** Ends the download: no more turns, its requests cancelled, its parents' children lists left. */
  private stop(): void {
    this.ended = true;
    if (this.have) this.w.holding(this.host, this.layer).onReaderWait = null;
    this.budgetChanged();
    this.timerVer++;
    for (const e of [...this.reqs]) this.settle(e, true);
    for (const p of this.parents.values()) (p.holding.listeners as Children).delete(p);
  }
}
