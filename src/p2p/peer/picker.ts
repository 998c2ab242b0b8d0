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
}

export interface PickInput {
  numPieces: number;
  have: PieceSet;
  /** How many pieces we hold (drives the random-first phase). */
  haveCount: number;
  parents: readonly PickerParent[];
  /** Outstanding requests: piece → ids of the parents it was requested from. */
  inFlight: ReadonlyMap<number, ReadonlySet<string>>;
  /** How many new requests may start now (free global slots). */
  maxAssignments: number;
  /** Streaming bias: a reader waits for this piece, so prefer it and the next few in order. */
  sequentialFrom?: number;
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

interface Slot {
  parent: PickerParent;
  free: number;
}

export class PiecePicker {
  readonly perParentLimit: number;
  private readonly randomFirst: number;
  private readonly endgameThreshold: number;
  private readonly endgameMaxRequests: number;
  private readonly sequentialWindow: number;
  private readonly rng: () => number;
  private availability = new Uint32Array(0);

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
    const { numPieces, have, parents, inFlight } = input;
    let budget = Math.floor(input.maxAssignments);
    if (budget <= 0 || parents.length === 0) return [];

    // Free request slots per parent, after what is already outstanding.
    const slots = new Map<string, Slot>();
    for (const p of parents) slots.set(p.id, { parent: p, free: p.limit ?? this.perParentLimit });
    let inFlightPieces = 0;
    for (const [piece, ids] of inFlight) {
      if (ids.size > 0 && !have.has(piece)) inFlightPieces++;
      for (const id of ids) {
        const s = slots.get(id);
        if (s) s.free--;
      }
    }
    const open = [...slots.values()].filter((s) => s.free > 0);
    if (open.length === 0) return [];

    // Availability of each missing, not-yet-requested piece over the parents we know.
    // Scratch reused across turns (allocating it was the costliest line of a turn); both counts
    // write every entry below numPieces.
    if (this.availability.length < numPieces) this.availability = new Uint32Array(numPieces);
    const availability = this.availability;
    const missing = countAvailabilityByBytes(numPieces, have, parents, availability) ?? countAvailability(numPieces, have, parents, availability);
    let maxAvail = 0;
    const fresh: number[] = [];
    // Held pieces count 0, so only pieces some parent can give are looked at further.
    for (let i = 0; i < numPieces; i++) {
      const a = availability[i]!;
      if (a === 0 || (inFlight.get(i)?.size ?? 0) > 0) continue;
      if (a > maxAvail) maxAvail = a;
      fresh.push(i);
    }
    if (missing === 0) return [];

    const out: Assignment[] = [];
    const assign = (piece: number, endgame: boolean, exclude?: ReadonlySet<string>): boolean => {
      const s = this.bestHolder(piece, open, exclude);
      if (!s) return false;
      s.free--;
      budget--;
      out.push({ piece, parentId: s.parent.id, endgame });
      return true;
    };
    const anyOpen = () => open.some((s) => s.free > 0);

    for (const piece of this.order(fresh, availability, maxAvail, input)) {
      if (budget <= 0 || !anyOpen()) return out;
      assign(piece, false);
    }

    // Endgame: everything missing is requested (or only a few are missing): duplicate requests.
    const unrequestedLeft = missing - inFlightPieces - out.length;
    const endgame = unrequestedLeft <= 0 || missing <= this.endgameThreshold;
    if (!endgame || budget <= 0) return out;
    const pending: Array<{ piece: number; ids: Set<string> }> = [];
    for (const [piece, ids] of inFlight) {
      if (have.has(piece) || ids.size === 0) continue;
      pending.push({ piece, ids: new Set(ids) });
    }
    for (const a of out) {
      const p = pending.find((x) => x.piece === a.piece);
      if (p) p.ids.add(a.parentId);
      else pending.push({ piece: a.piece, ids: new Set([a.parentId]) });
    }
    // Fewest outstanding copies first; random among equals.
    shuffle(pending, this.rng);
    pending.sort((a, b) => a.ids.size - b.ids.size);
    let progress = true;
    while (budget > 0 && progress && anyOpen()) {
      progress = false;
      for (const p of pending) {
        if (budget <= 0) break;
        if (p.ids.size >= this.endgameMaxRequests) continue;
        const s = this.bestHolder(p.piece, open, p.ids);
        if (!s) continue;
        s.free--;
        budget--;
        p.ids.add(s.parent.id);
        out.push({ piece: p.piece, parentId: s.parent.id, endgame: true });
        progress = true;
      }
    }
    return out;
  }

  /** Candidate order: streaming window first, then random (first pieces) or rarest-first with random ties. */
  private order(fresh: number[], availability: Uint32Array, maxAvail: number, input: PickInput): number[] {
    const head: number[] = [];
    let rest = fresh;
    if (input.sequentialFrom !== undefined) {
      const from = input.sequentialFrom;
      const to = from + this.sequentialWindow;
      head.push(...fresh.filter((i) => i >= from && i < to));
      if (head.length > 0) rest = fresh.filter((i) => i < from || i >= to);
    }
    if (input.haveCount < this.randomFirst) return head.concat(shuffle(rest.slice(), this.rng));
    // Bucket by availability (small integers), shuffle inside each bucket: O(n), random ties.
    const buckets: number[][] = Array.from({ length: maxAvail + 1 }, () => []);
    for (const i of rest) buckets[availability[i]!]!.push(i);
    for (const b of buckets) if (b.length > 0) head.push(...shuffle(b, this.rng));
    return head;
  }

  /** Among parents holding the piece with a free slot (not in `exclude`): the most free slots, random among equals. */
  private bestHolder(piece: number, open: Slot[], exclude?: ReadonlySet<string>): Slot | null {
    let best: Slot | null = null;
    let ties = 0;
    for (const s of open) {
      if (s.free <= 0 || exclude?.has(s.parent.id) || !s.parent.pieces.has(piece)) continue;
      if (!best || s.free > best.free) {
        best = s;
        ties = 1;
      } else if (s.free === best.free) {
        // Reservoir sampling keeps the choice uniform among equals.
        ties++;
        if (this.rng() * ties < 1) best = s;
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
 * countAvailability a byte of bitfield at a time, when every set involved is a Bitfield (the
 * downloader's and the simulator's are): O(parents x pieces / 8 + pieces held by parents that we
 * lack) instead of a has() call per piece and parent, which at 16 parents was the simulator's
 * hottest loop. Null (nothing written) for other sets.
 */
function countAvailabilityByBytes(numPieces: number, have: PieceSet, parents: readonly PickerParent[], out: Uint32Array): number | null {
  if (!(have instanceof Bitfield) || have.size !== numPieces) return null;
  for (const p of parents) if (!(p.pieces instanceof Bitfield) || p.pieces.size !== numPieces) return null;
  const mine = have.rawBytes();
  out.fill(0, 0, numPieces);
  for (const p of parents) {
    const theirs = (p.pieces as Bitfield).rawBytes();
    for (let j = 0; j < mine.length; j++) {
      // Pieces 8j..8j+7, piece 8j in the high bit (the wire order, see bitfield.ts).
      let b = theirs[j]! & ~mine[j]! & 0xff;
      while (b !== 0) {
        const k = Math.clz32(b) - 24;
        out[(j << 3) + k]!++;
        b &= ~(0x80 >>> k);
      }
    }
  }
  return numPieces - have.count;
}

/** The other requests for a piece that just landed: cancel them (endgame losers). */
export function losersOf(piece: number, winnerId: string, inFlight: ReadonlyMap<number, ReadonlySet<string>>): string[] {
  return [...(inFlight.get(piece) ?? [])].filter((id) => id !== winnerId);
}

function shuffle<T>(a: T[], rng: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}
