// Piece selection: pure and deterministic given its random source, so the fleet simulator can
// drive it in virtual time. BitTorrent's rules as Kraken keeps them: random first pieces (a new
// peer quickly gets something to trade, and the seed's children spread out), then rarest first
// over the parents we know (the rare pieces reach the swarm early), endgame at the tail
// (duplicate the last requests on other parents and cancel the losers, so one slow parent does
// not hold the whole download back).

import { Bitfield } from './bitfield.js';

/** Anything that answers "is piece i held?" (Bitfield does). */
export interface PieceSet {
  has(index: number): boolean;
}

export interface PickerParent {
  id: string;
  pieces: PieceSet;
  /** Concurrent requests allowed to this parent; defaults to the picker's perParentLimit. */
  limit?: number;
  /** Where this parent's bitfield bytes sit in PickInput.bitsArena (with an arena, every parent has one). */
  bitsAt?: number;
  /** How near it is (parent-policy's parentNearness): among holders with as many free slots, the nearest is asked. Default 0. */
  near?: number;
}

export interface PickInput {
  numPieces: number;
  have: PieceSet;
  /** How many pieces we hold (drives the random-first phase). */
  haveCount: number;
  /** Distinct ids. */
  parents: readonly PickerParent[];
  /** Outstanding requests: piece → ids of the parents it was requested from. */
  inFlight: ReadonlyMap<number, ReadonlySet<string>>;
  /** How many new requests may start now (free global slots). */
  maxAssignments: number;
  /**
   * Streaming bias: a reader waits for this piece, so prefer it and the next few in order, those
   * at least STREAM_MIN_HOLDERS parents hold (any, with one parent).
   */
  sequentialFrom?: number;
  /**
   * Whether an outstanding piece is late (see isLagging). While more than endgameThreshold pieces
   * are missing, endgame duplicates only late pieces: when the child's own downlink is what paces
   * its requests, a copy of one on time only takes bandwidth from it (bench/p2p, 12 agents, 16
   * pieces at 6 Mbit/s: 38 % of the bytes on the wire were such copies). Unset: any piece.
   */
  lagging?: (piece: number) => boolean;
  /**
   * Optional: one byte array that holds every parent's bitfield, the same bytes as its
   * `pieces.rawBytes()` from PickerParent.bitsAt on, kept current by the caller. The fleet
   * simulator keeps a download's parents side by side: reading 16 parents' bitfields through their
   * objects was a cache miss or three each, and the largest part of a turn at 10,000 nodes.
   * Without it (or if a parent lacks bitsAt) the picker copies the bitfields into its scratch.
   */
  bitsArena?: Readonly<Uint8Array>;
}

/** A request counts as late once it has taken this many typical piece times (isLagging). */
export const ENDGAME_LAG = 1.5;

/**
 * A piece first requested at `startedAt` is late when it has been out for over ENDGAME_LAG times
 * `pieceMs`, the child's running mean piece time (none yet: nothing is late). Both the
 * TaskDownloader and the simulator's thin engine hand this to the picker.
 */
export function isLagging(startedAt: number | undefined, now: number, pieceMs: number): boolean {
  return startedAt !== undefined && pieceMs > 0 && now - startedAt > ENDGAME_LAG * pieceMs;
}

export interface Assignment {
  piece: number;
  parentId: string;
  /** A duplicate of an outstanding request (endgame); cancel the other copy when one lands. */
  endgame: boolean;
}

export interface PickerOptions {
  /** Default concurrent requests per parent (Kraken pipelines 3 per agent, 5 per origin). Default 3. */
  perParentLimit?: number;
  /** Pieces picked at random before rarest-first starts. Default 4. */
  randomFirst?: number;
  /** Endgame starts when every missing piece is in flight, or when at most this many are missing. Default 2. */
  endgameThreshold?: number;
  /** In endgame, at most this many parents are asked for the same piece. Default 3. */
  endgameMaxRequests?: number;
  /** With sequentialFrom set, how many pieces from there are preferred in order. Default 4. */
  sequentialWindow?: number;
  /** Uniform in [0, 1). Default Math.random; inject a seeded one for simulations and tests. */
  rng?: () => number;
}

/**
 * pick()'s per-turn scratch. pick() runs on every landed piece of every download (millions of
 * times in a fleet simulation): allocating these per call was most of its cost and a tenth of the
 * simulator's garbage collection, and one set per picker (per download: 40,000 at 10,000 nodes)
 * made every turn start on cold memory. pick() is synchronous, so one set serves every picker in
 * the process; a nested call (from a PickInput callback) gets its own.
 */
class PickScratch {
  availability = new Uint32Array(0);
  /** The fresh pieces, then the same pieces in the order they are tried. */
  order = new Int32Array(0);
  sorted = new Int32Array(0);
  bucketStart = new Int32Array(0);
  /** Request slots left per parent (by position in input.parents). */
  free = new Int32Array(0);
  /** The parents' bitfields side by side, when the input has no arena (parent k's at k * bytes). */
  matrix = new Uint8Array(0);
  /** Where parent k's bitfield bytes start in the arena read this turn. */
  offsets = new Int32Array(0);
  /** Byte-lane counters of countAvailabilityByBytes. */
  laneHi = new Int32Array(0);
  laneLo = new Int32Array(0);
}

/**
 * Parents that must hold a piece before the streaming window may put it ahead of rarest-first.
 * Simulated with reading clients (docs/sim/ramp-experiments.md): 10,000 agents over three draws
 * 1.300x the bound with 3 against 1.320x with 2 (at least the fresh pieces' mean: 1.333x over
 * two); the 1,000 and 2,500-agent proxies a little better with 2 (1.2255 / 1.256 against 1.2305 /
 * 1.273, one draw).
 */
export const STREAM_MIN_HOLDERS = 3;

const sharedScratch = new PickScratch();
let sharedScratchBusy = false;

export class PiecePicker {
  readonly perParentLimit: number;
  private readonly randomFirst: number;
  private readonly endgameThreshold: number;
  private readonly endgameMaxRequests: number;
  private readonly sequentialWindow: number;
  private readonly rng: () => number;
  constructor(opts: PickerOptions = {}) {
    this.perParentLimit = Math.max(1, opts.perParentLimit ?? 3);
    this.randomFirst = Math.max(0, opts.randomFirst ?? 4);
    this.endgameThreshold = Math.max(0, opts.endgameThreshold ?? 2);
    this.endgameMaxRequests = Math.max(1, opts.endgameMaxRequests ?? 3);
    this.sequentialWindow = Math.max(1, opts.sequentialWindow ?? 4);
    this.rng = opts.rng ?? Math.random;
  }

  /** The next requests to start. Never assigns a held piece, a parent that lacks it, or beyond a parent's limit. */
  pick(input: PickInput): Assignment[] {
    if (sharedScratchBusy) return this.pickWith(input, new PickScratch());
    sharedScratchBusy = true;
    try {
      return this.pickWith(input, sharedScratch);
    } finally {
      sharedScratchBusy = false;
    }
  }

  private pickWith(input: PickInput, s: PickScratch): Assignment[] {
    const { numPieces, have, parents, inFlight } = input;
    let budget = Math.floor(input.maxAssignments);
    const np = parents.length;
    if (budget <= 0 || np === 0) return [];

    // Free request slots per parent, after what is already outstanding.
    if (s.free.length < np) s.free = new Int32Array(np * 2);
    const free = s.free;
    for (let k = 0; k < np; k++) free[k] = parents[k]!.limit ?? this.perParentLimit;
    let inFlightPieces = 0;
    for (const [piece, ids] of inFlight) {
      if (ids.size > 0 && !have.has(piece)) inFlightPieces++;
      // A linear scan: a handful of requests over a dozen parents costs less than a map per turn.
      for (const id of ids) {
        for (let k = 0; k < np; k++) {
          if (parents[k]!.id === id) {
            free[k]!--;
            break;
          }
        }
      }
    }
    /** Parents with a free slot left. */
    let openLeft = 0;
    for (let k = 0; k < np; k++) if (free[k]! > 0) openLeft++;
    if (openLeft === 0) return [];

    // Availability of each missing, not-yet-requested piece over the parents we know; both counts
    // write every entry below numPieces.
    if (s.availability.length < numPieces) {
      s.availability = new Uint32Array(numPieces);
      s.order = new Int32Array(numPieces);
      s.sorted = new Int32Array(numPieces);
    }
    const availability = s.availability;
    const arena = this.parentBits(numPieces, have, input, s);
    const mine = arena && (have as Bitfield).rawBytes();
    if (mine && s.laneHi.length < mine.length) {
      s.laneHi = new Int32Array(mine.length);
      s.laneLo = new Int32Array(mine.length);
    }
    const missing = mine ? countAvailabilityByBytes(numPieces, mine, (have as Bitfield).count, arena, s.offsets, np, availability, s.laneHi, s.laneLo) : countAvailability(numPieces, have, parents, availability);
    if (missing === 0) return [];
    // Pieces already requested are not fresh (endgame below may duplicate them).
    for (const [piece, ids] of inFlight) if (ids.size > 0 && piece >= 0 && piece < numPieces) availability[piece] = 0;
    const order = s.order;
    let n = 0;
    let maxAvail = 0;
    // Held pieces count 0, so only pieces some parent can give are looked at further.
    for (let i = 0; i < numPieces; i++) {
      const a = availability[i]!;
      if (a === 0) continue;
      if (a > maxAvail) maxAvail = a;
      order[n++] = i;
    }
    this.arrange(n, maxAvail, input, s);

    const out: Assignment[] = [];
    for (let c = 0; c < n; c++) {
      if (budget <= 0 || openLeft === 0) return out;
      const piece = order[c]!;
      const k = this.bestHolder(piece, parents, arena, null, s);
      if (k < 0) continue;
      if (--free[k]! === 0) openLeft--;
      budget--;
      out.push({ piece, parentId: parents[k]!.id, endgame: false });
    }

    // Endgame: everything missing is requested (or only a few are missing): duplicate requests.
    const unrequestedLeft = missing - inFlightPieces - out.length;
    const endgame = unrequestedLeft <= 0 || missing <= this.endgameThreshold;
    if (!endgame || budget <= 0) return out;
    // Near the very end any piece may be copied; before that only late ones (PickInput.lagging).
    const lagging = missing <= this.endgameThreshold ? undefined : input.lagging;
    const pending: Array<{ piece: number; ids: Set<string> }> = [];
    for (const [piece, ids] of inFlight) {
      if (have.has(piece) || ids.size === 0 || (lagging && !lagging(piece))) continue;
      pending.push({ piece, ids: new Set(ids) });
    }
    // Requests made in this call are fresh, so never late.
    if (!lagging) {
      for (const a of out) {
        const p = pending.find((x) => x.piece === a.piece);
        if (p) p.ids.add(a.parentId);
        else pending.push({ piece: a.piece, ids: new Set([a.parentId]) });
      }
    }
    // Fewest outstanding copies first; random among equals.
    shuffle(pending, 0, pending.length, this.rng);
    pending.sort((a, b) => a.ids.size - b.ids.size);
    let progress = true;
    while (budget > 0 && progress && openLeft > 0) {
      progress = false;
      for (const p of pending) {
        if (budget <= 0) break;
        if (p.ids.size >= this.endgameMaxRequests) continue;
        const k = this.bestHolder(p.piece, parents, arena, p.ids, s);
        if (k < 0) continue;
        if (--free[k]! === 0) openLeft--;
        budget--;
        const id = parents[k]!.id;
        p.ids.add(id);
        out.push({ piece: p.piece, parentId: id, endgame: true });
        progress = true;
      }
    }
    return out;
  }

  /**
   * Puts the first n entries of s.order (fresh pieces, ascending) in the order they are tried:
   * streaming window first, then random (first pieces) or rarest-first with random ties.
   */
  private arrange(n: number, maxAvail: number, input: PickInput, s: PickScratch): void {
    const order = s.order;
    const availability = s.availability;
    let head = 0;
    if (input.sequentialFrom !== undefined) {
      // Stable partition: the window's pieces to the front, the rest after them. Only pieces
      // STREAM_MIN_HOLDERS parents hold jump the line: every client of a rollout reads from piece
      // 0, so in-order requests for a piece one parent holds (at the start, the seed) had that
      // parent send the same piece to each child in turn while the children had nothing to
      // trade; rarest-first spreads those. The reader loses little (its pieces soon have more
      // holders) and the swarm keeps its pace: 2,500 reading agents ended at 1.26x the bound
      // instead of 1.69x (docs/sim/ramp-experiments.md). A lone parent has no swarm to protect:
      // stream in order.
      const from = input.sequentialFrom;
      const to = from + this.sequentialWindow;
      const minHolders = input.parents.length > 1 ? STREAM_MIN_HOLDERS : 1;
      const sorted = s.sorted;
      let r = 0;
      for (let c = 0; c < n; c++) {
        const i = order[c]!;
        if (i >= from && i < to && availability[i]! >= minHolders) order[head++] = i;
        else sorted[r++] = i;
      }
      for (let c = 0; c < r; c++) order[head + c] = sorted[c]!;
    }
    if (input.haveCount < this.randomFirst) {
      shuffle(order, head, n, this.rng);
      return;
    }
    // Bucket by availability (small integers, a stable counting sort), shuffle inside each bucket:
    // O(n), random ties.
    if (s.bucketStart.length < maxAvail + 2) s.bucketStart = new Int32Array(maxAvail * 2 + 2);
    const start = s.bucketStart;
    // Loops, not fill(0, from, to): the builtin's range form cost more than the whole count (profiled).
    for (let a = 0; a < maxAvail + 2; a++) start[a] = 0;
    for (let c = head; c < n; c++) start[availability[order[c]!]! + 1]!++;
    for (let a = 1; a <= maxAvail + 1; a++) start[a]! += start[a - 1]!;
    const sorted = s.sorted;
    for (let c = head; c < n; c++) {
      const i = order[c]!;
      sorted[head + start[availability[i]!]!++] = i;
    }
    // A copy loop, not set(subarray()): a typed-array view per turn costs more than the copy.
    for (let c = head; c < n; c++) order[c] = sorted[c]!;
    // start[a] is now where bucket a ends.
    let from = head;
    for (let a = 0; a <= maxAvail; a++) {
      const to = head + start[a]!;
      shuffle(order, from, to, this.rng);
      from = to;
    }
  }

  /**
   * Every parent's bitfield bytes in one array, parent k's from s.offsets[k] (the fast path): the
   * input's arena, or a copy into scratch when every set is a Bitfield of numPieces; else null.
   */
  private parentBits(numPieces: number, have: PieceSet, input: PickInput, s: PickScratch): Readonly<Uint8Array> | null {
    const { parents } = input;
    const np = parents.length;
    if (!(have instanceof Bitfield) || have.size !== numPieces || np > MAX_PARENTS_BY_BYTES) return null;
    if (s.offsets.length < np) s.offsets = new Int32Array(np * 2);
    const offsets = s.offsets;
    const arena = input.bitsArena;
    if (arena) {
      let k = 0;
      for (; k < np; k++) {
        const at = parents[k]!.bitsAt;
        if (at === undefined) break;
        offsets[k] = at;
      }
      if (k === np) return arena;
    }
    const bytes = (numPieces + 7) >> 3;
    if (s.matrix.length < np * bytes) s.matrix = new Uint8Array(np * bytes * 2);
    const matrix = s.matrix;
    for (let k = 0; k < np; k++) {
      const p = parents[k]!.pieces;
      if (!(p instanceof Bitfield) || p.size !== numPieces) return null;
      const raw = p.rawBytes();
      const at = k * bytes;
      for (let j = 0; j < bytes; j++) matrix[at + j] = raw[j]!;
      offsets[k] = at;
    }
    return matrix;
  }

  /**
   * Among parents holding the piece with a free slot (not in `exclude`): the most free slots, then
   * the nearest, random among equals. -1 if none. Nearest second: with 2:1 oversubscribed rack
   * uplinks a rack whose pieces mostly come from other racks is capped by its uplink, and the last
   * agents of a 10,000-agent rollout were whole racks (docs/sim/ramp-experiments.md).
   */
  private bestHolder(piece: number, parents: readonly PickerParent[], arena: Readonly<Uint8Array> | null, exclude: ReadonlySet<string> | null, s: PickScratch): number {
    const free = s.free;
    const at = piece >> 3;
    const mask = 0x80 >> (piece & 7);
    let best = -1;
    let bestFree = 0;
    let bestNear = 0;
    let ties = 0;
    for (let k = 0; k < parents.length; k++) {
      const f = free[k]!;
      if (f <= 0) continue;
      const p = parents[k]!;
      if (exclude?.has(p.id)) continue;
      if (arena ? (arena[s.offsets[k]! + at]! & mask) === 0 : !p.pieces.has(piece)) continue;
      const near = p.near ?? 0;
      if (best < 0 || f > bestFree || (f === bestFree && near > bestNear)) {
        best = k;
        bestFree = f;
        bestNear = near;
        ties = 1;
      } else if (f === bestFree && near === bestNear) {
        // Reservoir sampling keeps the choice uniform among equals.
        ties++;
        if (this.rng() * ties < 1) best = k;
      }
    }
    return best;
  }
}

/**
 * Writes, for every piece, how many parents hold it if we lack it (0 if we hold it), and returns
 * how many pieces we lack.
 */
function countAvailability(numPieces: number, have: PieceSet, parents: readonly PickerParent[], out: Uint32Array): number {
  let missing = 0;
  for (let i = 0; i < numPieces; i++) {
    out[i] = 0;
    if (have.has(i)) continue;
    missing++;
    for (const p of parents) if (p.pieces.has(i)) out[i]!++;
  }
  return missing;
}

/**
 * Bit j of nibble n spread to byte j of a 32-bit word (bit 3, the nibble's first piece, to byte
 * 0): adding these words counts four pieces at once, one byte-wide counter each.
 */
const SPREAD_NIBBLE = Int32Array.from({ length: 16 }, (_, n) => {
  let w = 0;
  for (let k = 0; k < 4; k++) if (n & (8 >> k)) w |= 1 << (8 * k);
  return w;
});

/** Parents countAvailabilityByBytes can count: its byte-wide counters must not overflow. */
const MAX_PARENTS_BY_BYTES = 255;

/**
 * countAvailability a byte of bitfield at a time, when every set involved is a Bitfield (the
 * downloader's and the simulator's are) and there are at most 255 parents: per parent and byte,
 * two table lookups and two adds count the byte's eight pieces in byte-wide lanes (SWAR), with no
 * branch per piece. A loop over the set bits was the simulator's hottest code at 16 parents.
 * Parent k's bitfield is arena[offsets[k] ..]; `hi`/`lo` are scratch of at least mine.length entries.
 */
function countAvailabilityByBytes(numPieces: number, mine: Readonly<Uint8Array>, held: number, arena: Readonly<Uint8Array>, offsets: Int32Array, np: number, out: Uint32Array, hi: Int32Array, lo: Int32Array): number {
  const bytes = mine.length;
  for (let j = 0; j < bytes; j++) {
    hi[j] = 0;
    lo[j] = 0;
  }
  for (let k = 0; k < np; k++) {
    const from = offsets[k]!;
    for (let j = 0; j < bytes; j++) {
      // Pieces 8j..8j+7, piece 8j in the high bit (the wire order, see bitfield.ts).
      const b = arena[from + j]! & ~mine[j]!;
      hi[j]! += SPREAD_NIBBLE[(b >> 4) & 15]!;
      lo[j]! += SPREAD_NIBBLE[b & 15]!;
    }
  }
  for (let j = 0; j < bytes; j++) {
    const base = j << 3;
    const h = hi[j]!;
    const l = lo[j]!;
    const n = Math.min(8, numPieces - base);
    for (let k = 0; k < n; k++) out[base + k] = k < 4 ? (h >>> (8 * k)) & 255 : (l >>> (8 * (k - 4))) & 255;
  }
  return numPieces - held;
}

/** The other requests for a piece that just landed: cancel them (endgame losers). */
export function losersOf(piece: number, winnerId: string, inFlight: ReadonlyMap<number, ReadonlySet<string>>): string[] {
  return [...(inFlight.get(piece) ?? [])].filter((id) => id !== winnerId);
}

/** Fisher-Yates over a[from..to), from the end (the draw order the simulations were recorded with). */
function shuffle<T extends { [i: number]: unknown }>(a: T, from: number, to: number, rng: () => number): T {
  for (let i = to - from - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = a[from + i];
    a[from + i] = a[from + j];
    a[from + j] = t;
  }
  return a;
}
