// Flow-level network model: links with capacities, flows along paths of links, rates shared
// max-min fairly (progressive filling), weighted: a flow of weight w gets w shares of a link
// (weight 1 by default; an agent's uploads are weighted by their children's progress, as the
// real agent's UploadShares does). Rates change only when flows start or finish: the first
// change after a quiet spell schedules one global recomputation `windowMs` later, and every start
// and finish inside that window is folded into it (windowMs = 0: every change, exactly).
// Between recomputations rates are constant, so finish times are exact and come from a heap.
// A flow that starts inside a window does not wait for it: it takes the residual capacity of its
// path (cap minus what current flows use), which never over-subscribes a link and is what a
// pipelined download does anyway (a finished piece is replaced by a request on the same links).
//
// Why not exact incremental max-min per event: at 10,000 nodes the flows form one connected
// component (children share parents' uplinks, parents share children's downlinks), so an exact
// update is a global one, and there are ~5 million flow events. One global pass per window over
// ~60,000 flows costs a few ms; the window (scenario default 10 ms, against pieces that take
// 30-1000 ms) bounds how stale a rate can be, and REPORT.md shows how little the results move
// between 0 (exact) and 20 ms. Flows live in typed arrays (struct of arrays): this
// loop is most of the simulator's cost at scale.
import type { VirtualTime } from '../engine/time.js';

/** What callers hold: cancel or measure a flow through it. `id` is -1 once it ended. */
export interface Flow {
  id: number;
  readonly bytes: number;
  /** Bytes moved, set when the flow ends (finished or aborted). */
  moved: number;
  /** Called with the flow itself, so that one function can serve every flow (its `tag` says whose). */
  onDone: ((f: Flow) => void) | null;
  /** The caller's own reference (the simulator's request). */
  tag?: unknown;
}

export interface NetworkStats {
  flowsStarted: number;
  flowsFinished: number;
  flowsAborted: number;
  recomputes: number;
  /** Wall ms spent in max-min recomputation. */
  recomputeWallMs: number;
}

const MAX_PATH = 8;

export class FlowNetwork {
  // Links: capacity and current use in bytes per virtual ms, and how many flows cross each.
  private cap = new Float64Array(64);
  private used = new Float64Array(64);
  private count = new Int32Array(64);
  private L = 0;
  // Flows, by slot: progress, rate, place in the finish heap, path (length 0: a free slot).
  private rate = new Float64Array(1024);
  private rem = new Float64Array(1024);
  private at = new Float64Array(1024);
  private fin = new Float64Array(1024);
  private hIdx = new Int32Array(1024).fill(-1);
  private mark = new Int32Array(1024);
  private plen = new Uint8Array(1024);
  private wt = new Float64Array(1024).fill(1);
  private path = new Int32Array(1024 * MAX_PATH);
  private handle: Array<Flow | null> = [];
  private free: number[] = [];
  private slots = 0;
  /** Finish-time min-heap of flow slots. */
  private heap: number[] = [];
  private dirty = false;
  private recomputeAt = Infinity;
  private wakeAt = Infinity;
  private wakeVersion = 0;
  private epoch = 0;
  // Scratch for progressive filling: capacity left, and the weight of the flows not yet fixed.
  private lrem = new Float64Array(64);
  private lwt = new Float64Array(64);
  /** The links not yet filled, a min-heap by share; `hkey` holds each heap place's key beside it (no indirection per comparison). */
  private lheap = new Int32Array(64);
  private hkey = new Float64Array(64);
  /**
   * Each link's flows, rebuilt by every recomputation from the flows' paths (compressed rows: link
   * l's flow slots are byLink[first[l]] to byLink[first[l + 1] - 1], in slot order). A JS array
   * of slots per link, kept current at every start and end, cost a cache miss or two per link
   * visited (tens of thousands of arrays scattered over a gigabyte heap at 10,000 nodes) and, at each end, a
   * walk over the path of the flow swapped into the freed place.
   */
  private first = new Int32Array(65);
  private byLink = new Int32Array(1024);
  /** Flows in progress. */
  active = 0;
  readonly stats: NetworkStats = { flowsStarted: 0, flowsFinished: 0, flowsAborted: 0, recomputes: 0, recomputeWallMs: 0 };

  constructor(
    private readonly time: VirtualTime,
    /** Coalescing window for rate recomputation, virtual ms (0 = on every change). */
    readonly windowMs = 10,
  ) {}

  /** Adds a link of `bytesPerSec` capacity; returns its id, or -1 for an unlimited link (never on a path). */
  addLink(bytesPerSec: number): number {
    if (!(bytesPerSec > 0) || !Number.isFinite(bytesPerSec)) return -1;
    const l = this.L++;
    if (l >= this.cap.length) {
      this.cap = grow(this.cap, this.L * 2);
      this.used = grow(this.used, this.L * 2);
      this.count = grow(this.count, this.L * 2);
      this.first = new Int32Array(this.L * 2 + 1);
      this.lrem = new Float64Array(this.L * 2);
      this.lwt = new Float64Array(this.L * 2);
      this.lheap = new Int32Array(this.L * 2);
      this.hkey = new Float64Array(this.L * 2);
    }
    this.cap[l] = bytesPerSec / 1000;
    return l;
  }

  get linkCount(): number {
    return this.L;
  }

  /** The flows in progress (a snapshot: safe to abort while iterating). */
  flows(): Flow[] {
    const out: Flow[] = [];
    for (let s = 0; s < this.slots; s++) {
      const f = this.handle[s];
      if (f) out.push(f);
    }
    return out;
  }

  /** Bytes/s in use on a link at the last rate recomputation. */
  linkUseBps(link: number): number {
    return link >= 0 ? this.used[link]! * 1000 : 0;
  }

  /** Current rate of a flow in bytes/s (0 once ended). */
  rateOf(f: Flow): number {
    return f.id >= 0 ? this.rate[f.id]! * 1000 : 0;
  }

  /** Bytes moved so far. */
  transferred(f: Flow): number {
    if (f.id < 0) return f.moved;
    const s = f.id;
    return f.bytes - Math.max(0, this.rem[s]! - this.rate[s]! * (this.time.now() - this.at[s]!));
  }

  /** Starts moving `bytes` along `path` (link ids; -1 entries are skipped); `onDone` runs when the last byte arrives. */
  start(path: readonly number[], bytes: number, onDone: (f: Flow) => void): Flow {
    const now = this.time.now();
    // `tag` in the literal, set or not: added later it would go out of the object (one more allocation per flow).
    const f: Flow = { id: -1, bytes, moved: 0, onDone, tag: undefined };
    this.stats.flowsStarted++;
    let n = 0;
    for (const l of path) if (l >= 0) n++;
    if (n === 0 || bytes <= 0) {
      // Nothing limits it: it lands at once (after the events already due now).
      this.time.at(now, () => {
        const cb = f.onDone;
        if (!cb) return;
        f.onDone = null;
        f.moved = bytes;
        this.stats.flowsFinished++;
        cb(f);
      });
      return f;
    }
    if (n > MAX_PATH) throw new Error(`a path of ${n} links is longer than ${MAX_PATH}`);
    const s = this.alloc();
    f.id = s;
    this.handle[s] = f;
    this.active++;
    let residual = Infinity;
    let j = 0;
    for (const l of path) {
      if (l < 0) continue;
      this.path[s * MAX_PATH + j] = l;
      this.count[l]!++;
      j++;
      const r = this.cap[l]! - this.used[l]!;
      if (r < residual) residual = r;
    }
    this.plen[s] = n;
    // Provisional rate until the next recomputation: what the path has left.
    const rate = residual > 1e-9 ? residual : 0;
    this.rate[s] = rate;
    this.rem[s] = bytes;
    this.at[s] = now;
    for (let k = 0; k < n; k++) this.used[this.path[s * MAX_PATH + k]!]! += rate;
    this.fin[s] = rate > 0 ? now + bytes / rate : Infinity;
    if (rate > 0) this.heapPush(s);
    this.touch(now);
    return f;
  }

  /** Sets a flow's weight in the max-min sharing (default 1); takes effect at the next recomputation. */
  setWeight(f: Flow, w: number): void {
    if (f.id < 0 || this.wt[f.id] === w) return;
    this.wt[f.id] = w;
    this.touch(this.time.now());
  }

  /** Stops a flow without calling its onDone (a peer died, a request was cancelled). */
  abort(f: Flow): void {
    f.onDone = null;
    if (f.id < 0) return;
    this.detach(f.id);
    this.stats.flowsAborted++;
    this.touch(this.time.now());
  }

  private alloc(): number {
    const s = this.free.pop();
    if (s !== undefined) return s;
    const id = this.slots++;
    if (id >= this.rate.length) {
      const n = this.rate.length * 2;
      this.rate = grow(this.rate, n);
      this.rem = grow(this.rem, n);
      this.at = grow(this.at, n);
      this.fin = grow(this.fin, n);
      const h = new Int32Array(n).fill(-1);
      h.set(this.hIdx);
      this.hIdx = h;
      this.mark = grow(this.mark, n);
      this.plen = grow(this.plen, n);
      const w = new Float64Array(n).fill(1);
      w.set(this.wt);
      this.wt = w;
      this.path = grow(this.path, n * MAX_PATH);
    }
    return id;
  }

  private detach(s: number): void {
    const f = this.handle[s]!;
    const now = this.time.now();
    this.rem[s] = Math.max(0, this.rem[s]! - this.rate[s]! * (now - this.at[s]!));
    // Keep what it moved on the handle: transferred() must still answer after the end.
    f.moved = f.bytes - this.rem[s]!;
    f.id = -1;
    this.handle[s] = null;
    this.active--;
    if (this.hIdx[s]! >= 0) this.heapRemove(s);
    const n = this.plen[s]!;
    const r = this.rate[s]!;
    for (let j = 0; j < n; j++) {
      const l = this.path[s * MAX_PATH + j]!;
      this.used[l] = --this.count[l]! === 0 ? 0 : this.used[l]! - r;
    }
    this.rate[s] = 0;
    this.wt[s] = 1;
    this.plen[s] = 0;
    this.free.push(s);
  }

  /** A change happened at `now`: make sure a recomputation is due within the window. */
  private touch(now: number): void {
    if (!this.dirty) {
      this.dirty = true;
      this.recomputeAt = now + this.windowMs;
    }
    this.reschedule();
  }

  private reschedule(): void {
    const next = Math.min(this.heap.length > 0 ? this.fin[this.heap[0]!]! : Infinity, this.dirty ? this.recomputeAt : Infinity);
    if (next === this.wakeAt) return;
    if (next === Infinity || (next > this.wakeAt && this.wakeAt >= this.time.now())) {
      // An earlier wake-up is already on the agenda; it will look again.
      if (next === Infinity) this.wakeAt = Infinity;
      return;
    }
    this.wakeAt = next;
    const v = ++this.wakeVersion;
    this.time.at(next, () => {
      if (v === this.wakeVersion) this.wake();
    });
  }

  private wake(): void {
    const now = this.time.now();
    this.wakeAt = Infinity;
    if (this.dirty && this.recomputeAt <= now) this.recompute(now);
    // Finish everything due now; callbacks run after, so they see a consistent network.
    const done: Flow[] = [];
    const calls: Array<(f: Flow) => void> = [];
    while (this.heap.length > 0 && this.fin[this.heap[0]!]! <= now) {
      const s = this.heap[0]!;
      const f = this.handle[s]!;
      this.detach(s);
      f.moved = f.bytes;
      this.stats.flowsFinished++;
      const cb = f.onDone;
      f.onDone = null;
      if (cb) {
        done.push(f);
        calls.push(cb);
      }
    }
    if (done.length > 0 && !this.dirty) {
      this.dirty = true;
      this.recomputeAt = now + this.windowMs;
    }
    for (let i = 0; i < done.length; i++) calls[i]!(done[i]!);
    this.reschedule();
  }

  /**
   * Weighted max-min fair rates for every flow by progressive filling: repeatedly take the link
   * with the lowest fair share (remaining capacity / weight of its unfixed flows), fix its flows at
   * that share times their weight, take it
   * off their other links. Shares only grow as filling proceeds (fixing flows at the lowest share
   * leaves every other link's share the same or higher), so a link's heap key is a lower bound of
   * its share: a popped link whose share grew past the next key goes back in with the new key.
   */
  private recompute(now: number): void {
    const w0 = performance.now();
    this.stats.recomputes++;
    this.dirty = false;
    this.recomputeAt = Infinity;
    const { cap, count, first, lrem, lwt, lheap, hkey, rate, rem, at, path, plen, mark, used, wt } = this;
    const L = this.L;
    const epoch = ++this.epoch;
    // Each link's flows, and the sum of their weights, from one walk over the flows' paths (in
    // slot order); `lheap` holds each link's fill cursor until the heap is built.
    let total = 0;
    for (let l = 0; l < L; l++) {
      first[l] = lheap[l] = total;
      total += count[l]!;
      lwt[l] = 0;
      used[l] = 0;
    }
    first[L] = total;
    if (this.byLink.length < total) this.byLink = new Int32Array(Math.max(total, 2 * this.byLink.length));
    const byLink = this.byLink;
    for (let s = 0; s < this.slots; s++) {
      // A free slot's path length is 0 (reading the handle instead was a cache miss per flow).
      const n = plen[s]!;
      if (n === 0) continue;
      const b = s * MAX_PATH;
      const w = wt[s]!;
      for (let j = 0; j < n; j++) {
        const k = path[b + j]!;
        byLink[lheap[k]!++] = s;
        lwt[k] = lwt[k]! + w;
      }
    }
    let hn = 0;
    for (let l = 0; l < L; l++) {
      if (count[l] === 0) continue;
      lrem[l] = cap[l]!;
      hkey[hn] = cap[l]! / lwt[l]!;
      lheap[hn++] = l;
    }
    const down = (i: number, n: number) => {
      const x = lheap[i]!;
      const kx = hkey[i]!;
      for (;;) {
        const a = 2 * i + 1;
        if (a >= n) break;
        let c = a;
        if (a + 1 < n && hkey[a + 1]! < hkey[a]!) c = a + 1;
        if (hkey[c]! >= kx) break;
        lheap[i] = lheap[c]!;
        hkey[i] = hkey[c]!;
        i = c;
      }
      lheap[i] = x;
      hkey[i] = kx;
    };
    const up = (i: number) => {
      const x = lheap[i]!;
      const kx = hkey[i]!;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (hkey[p]! <= kx) break;
        lheap[i] = lheap[p]!;
        hkey[i] = hkey[p]!;
        i = p;
      }
      lheap[i] = x;
      hkey[i] = kx;
    };
    for (let i = (hn >> 1) - 1; i >= 0; i--) down(i, hn);
    while (hn > 0) {
      const l = lheap[0]!;
      lheap[0] = lheap[--hn]!;
      hkey[0] = hkey[hn]!;
      if (hn > 0) down(0, hn);
      if (lwt[l]! <= 1e-12) continue; // every flow fixed (a float sum of weights leaves dust)
      const share = Math.max(0, lrem[l]! / lwt[l]!);
      if (hn > 0 && share > hkey[0]!) {
        lheap[hn] = l;
        hkey[hn] = share;
        up(hn++);
        continue;
      }
      for (let i = first[l]!, end = first[l + 1]!; i < end; i++) {
        const s = byLink[i]!;
        if (mark[s] === epoch) continue;
        mark[s] = epoch;
        // Settle progress at the old rate before the new one applies.
        rem[s] = Math.max(0, rem[s]! - rate[s]! * (now - at[s]!));
        at[s] = now;
        const w = wt[s]!;
        const r = share * w;
        rate[s] = r;
        const b = s * MAX_PATH;
        const n = plen[s]!;
        for (let j = 0; j < n; j++) {
          const k = path[b + j]!;
          lrem[k] = lrem[k]! - r;
          lwt[k] = lwt[k]! - w;
          used[k] = used[k]! + r;
        }
      }
    }
    // Finish times changed for (nearly) everyone: rebuild the finish heap in O(flows).
    // Overwritten in place, not emptied and refilled: `length = 0` drops the backing store, and
    // regrowing it (~1 MB at 10,000 nodes, in the large-object space) every window fed the major GC.
    const heap = this.heap;
    for (const s of heap) this.hIdx[s] = -1;
    let hl = 0;
    for (let s = 0; s < this.slots; s++) {
      if (plen[s] === 0) continue;
      const t = rate[s]! > 0 ? now + rem[s]! / rate[s]! : Infinity;
      this.fin[s] = t;
      if (t !== Infinity) {
        this.hIdx[s] = hl;
        heap[hl++] = s;
      }
    }
    heap.length = hl;
    for (let i = (hl >> 1) - 1; i >= 0; i--) this.heapDown(i);
    this.stats.recomputeWallMs += performance.now() - w0;
  }

  // --- finish-time heap (indexed, so a flow can be removed in O(log n)) ------------------------

  private heapPush(s: number): void {
    this.hIdx[s] = this.heap.length;
    this.heap.push(s);
    this.heapUp(this.heap.length - 1);
  }

  private heapRemove(s: number): void {
    const h = this.heap;
    const i = this.hIdx[s]!;
    this.hIdx[s] = -1;
    const last = h.pop()!;
    if (i < h.length) {
      h[i] = last;
      this.hIdx[last] = i;
      this.heapUp(i);
      if (this.hIdx[last] === i) this.heapDown(i);
    }
  }

  private heapUp(i: number): void {
    const h = this.heap;
    const fin = this.fin;
    const s = h[i]!;
    const t = fin[s]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const ps = h[p]!;
      if (fin[ps]! <= t) break;
      h[i] = ps;
      this.hIdx[ps] = i;
      i = p;
    }
    h[i] = s;
    this.hIdx[s] = i;
  }

  private heapDown(i: number): void {
    const h = this.heap;
    const fin = this.fin;
    const n = h.length;
    const s = h[i]!;
    const t = fin[s]!;
    for (;;) {
      const a = 2 * i + 1;
      if (a >= n) break;
      const b = a + 1;
      const c = b < n && fin[h[b]!]! < fin[h[a]!]! ? b : a;
      if (fin[h[c]!]! >= t) break;
      h[i] = h[c]!;
      this.hIdx[h[i]!] = i;
      i = c;
    }
    h[i] = s;
    this.hIdx[s] = i;
  }
}

function grow<T extends Float64Array | Int32Array | Uint8Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}
