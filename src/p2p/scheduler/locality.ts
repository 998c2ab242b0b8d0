// Topology helpers for parent and seed choice: how much locality two peers share, bucket keys
// for locality-first sampling, a bag with O(1) add/remove/random pick, and rendezvous hashing.
import type { Locality } from '../protocol.js';

// Shared with the peers' piece picker, so it lives with the protocol's Locality.
export { localityLevel } from '../protocol.js';

/** Bucket keys, narrowest last; NUL cannot appear in JSON-sourced labels we accept. */
export function localityKeys(l: Locality): { dc: string; zone: string; rack: string } {
  const dc = l.dc ?? '';
  const zone = `${dc}\u0000${l.zone ?? ''}`;
  return { dc, zone, rack: `${zone}\u0000${l.rack ?? ''}` };
}

/** What sampling needs of the set of candidates already drawn (a Set will do). */
export interface SeenSet<T> {
  has(x: T): boolean;
  add(x: T): unknown;
}

/** Something kept in bags: where it sits in each, by the bags' slot number (-1 when not in one). */
export interface Bagged {
  bagPos: number[];
}

/**
 * An unordered set with O(1) add, delete and uniform random pick: what random sampling of
 * candidates needs without ever walking the whole swarm. An item is in at most one bag per
 * `slot` at a time and keeps its position there itself (a Map per bag cost two hash updates per
 * move, and members move in and out of bags on most announces of a burst).
 */
export class Bag<T extends Bagged> {
  private readonly items: T[] = [];

  constructor(private readonly slot: number) {}

  get size(): number {
    return this.items.length;
  }

  add(x: T): void {
    if (this.has(x)) return;
    x.bagPos[this.slot] = this.items.length;
    this.items.push(x);
  }

  delete(x: T): boolean {
    if (!this.has(x)) return false;
    const i = x.bagPos[this.slot]!;
    const last = this.items.pop()!;
    if (last !== x) {
      this.items[i] = last;
      last.bagPos[this.slot] = i;
    }
    x.bagPos[this.slot] = -1;
    return true;
  }

  has(x: T): boolean {
    const i = x.bagPos[this.slot] ?? -1;
    return i >= 0 && this.items[i] === x;
  }

  /**
   * Adds up to `k` members not yet in `seen` to `out` (and `seen`). Small bags are taken whole;
   * large ones are probed at random (with replacement, at most 2k probes), so the cost is O(k).
   */
  sample(k: number, random: () => number, seen: SeenSet<T>, out: T[]): void {
    if (k <= 0) return;
    const n = this.items.length;
    if (n <= k) {
      for (const x of this.items) {
        if (!seen.has(x)) {
          seen.add(x);
          out.push(x);
        }
      }
      return;
    }
    let added = 0;
    for (let probes = 0; added < k && probes < 2 * k; probes++) {
      const x = this.items[Math.floor(random() * n)]!;
      if (seen.has(x)) continue;
      seen.add(x);
      out.push(x);
      added++;
    }
  }

  values(): IterableIterator<T> {
    return this.items.values();
  }
}

/** FNV-1a 32-bit with a murmur3 finaliser: fast, deterministic, well mixed for short strings. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Rendezvous (highest-random-weight) hashing: each key maps to one member, and adding or removing
 * a member only moves the keys that member wins or won. Different digests land on different
 * seeds, so a hot image's layers are spread instead of pinned to one seed.
 */
export function rendezvous<T>(key: string, members: readonly T[], idOf: (m: T) => string): T | undefined {
  let best: T | undefined;
  let bestScore = -1;
  for (const m of members) {
    const s = hash32(`${key}\u0000${idOf(m)}`);
    if (s > bestScore) {
      bestScore = s;
      best = m;
    }
  }
  return best;
}
