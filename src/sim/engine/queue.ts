// The simulator's agenda: a binary min-heap of (time, sequence) → action. The sequence number
// keeps same-time events in the order they were scheduled, which is what makes a run
// deterministic for a given seed. Entries can carry an AbortSignal: an aborted entry is skipped
// when it comes up, and compact() drops aborted entries in bulk (the downloader aborts most of
// its sleeps long before they are due, and listening for each abort would cost more than the
// sleep itself: Node 20's AbortSignal listeners and abort() cost microseconds each).

export interface Entry {
  t: number;
  seq: number;
  fn: () => void;
  /** Skipped (and dropped by compact) once aborted. */
  signal: AbortSignal | undefined;
}

export class EventQueue {
  private h: Entry[] = [];
  private seq = 0;
  /** Size after the last compaction; the next one runs when the heap has doubled since. */
  private compactAt = 1 << 16;

  get size(): number {
    return this.h.length;
  }

  /** Time of the earliest entry, Infinity when empty. */
  peekTime(): number {
    return this.h.length > 0 ? this.h[0]!.t : Infinity;
  }

  push(t: number, fn: () => void, signal?: AbortSignal): void {
    const e: Entry = { t, seq: this.seq++, fn, signal };
    const h = this.h;
    h.push(e);
    this.up(h.length - 1);
    if (h.length > this.compactAt) this.compact();
  }

  /** Removes and returns the earliest entry (undefined when empty). */
  pop(): Entry | undefined {
    const h = this.h;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      this.down(0);
    }
    return top;
  }

  /** Drops entries whose signal was aborted; O(n), amortised by running only when the heap doubled. */
  compact(): void {
    const kept = this.h.filter((e) => !e.signal?.aborted);
    this.h = kept;
    // Floyd's heapify.
    for (let i = (kept.length >> 1) - 1; i >= 0; i--) this.down(i);
    this.compactAt = Math.max(1 << 16, kept.length * 2);
  }

  private less(a: Entry, b: Entry): boolean {
    return a.t < b.t || (a.t === b.t && a.seq < b.seq);
  }

  private up(i: number): void {
    const h = this.h;
    const e = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = h[p]!;
      if (!this.less(e, pe)) break;
      h[i] = pe;
      i = p;
    }
    h[i] = e;
  }

  private down(i: number): void {
    const h = this.h;
    const n = h.length;
    const e = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(h[r]!, h[l]!) ? r : l;
      if (!this.less(h[c]!, e)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = e;
  }
}
