// The simulator's agenda: a binary min-heap of (time, sequence) → action. The sequence number
// keeps same-time events in the order they were scheduled, which is what makes a run
// deterministic for a given seed. Entries can carry an AbortSignal: an aborted entry is skipped
// when it comes up, and compact() drops aborted entries in bulk (the downloader aborts most of
// its sleeps long before they are due, and listening for each abort would cost more than the
// sleep itself: Node 20's AbortSignal listeners and abort() cost microseconds each).
//
// The heap is a structure of arrays (times and sequence numbers in typed arrays, actions beside
// them) rather than an array of entry objects: a 10,000-node run keeps a few hundred thousand
// entries, and a sift that reads each level's time from a contiguous array misses the cache far
// less than one that follows a pointer per level. No object is allocated per entry.

type Action = () => void;

export class EventQueue {
  private t = new Float64Array(1024);
  private seq = new Float64Array(1024);
  private fn: Array<Action | undefined> = [];
  private signal: Array<AbortSignal | undefined> = [];
  private n = 0;
  private nextSeq = 0;
  /** Size after the last compaction; the next one runs when the heap has doubled since. */
  private compactAt = 1 << 16;

  get size(): number {
    return this.n;
  }

  /** Time of the earliest entry, Infinity when empty. */
  peekTime(): number {
    return this.n > 0 ? this.t[0]! : Infinity;
  }

  push(t: number, fn: Action, signal?: AbortSignal): void {
    if (this.n === this.t.length) this.grow();
    const i = this.n++;
    this.place(i, t, this.nextSeq++, fn, signal);
    this.up(i);
    if (this.n > this.compactAt) this.compact();
  }

  /** Removes the earliest entry and returns its action (undefined when empty). */
  pop(): Action | undefined {
    const n = this.n;
    if (n === 0) return undefined;
    const top = this.fn[0];
    const last = n - 1;
    this.n = last;
    if (last > 0) {
      this.place(0, this.t[last]!, this.seq[last]!, this.fn[last]!, this.signal[last]);
      this.down(0);
    }
    // Let the popped closures (and what they hold) be collected.
    this.fn[last] = undefined;
    this.signal[last] = undefined;
    return top;
  }

  /** Drops entries whose signal was aborted; O(n), amortised by running only when the heap doubled. */
  compact(): void {
    let kept = 0;
    for (let i = 0; i < this.n; i++) {
      if (this.signal[i]?.aborted) continue;
      if (kept !== i) this.place(kept, this.t[i]!, this.seq[i]!, this.fn[i]!, this.signal[i]);
      kept++;
    }
    for (let i = kept; i < this.n; i++) {
      this.fn[i] = undefined;
      this.signal[i] = undefined;
    }
    this.n = kept;
    // Floyd's heapify.
    for (let i = (kept >> 1) - 1; i >= 0; i--) this.down(i);
    this.compactAt = Math.max(1 << 16, kept * 2);
  }

  private place(i: number, t: number, seq: number, fn: Action, signal: AbortSignal | undefined): void {
    this.t[i] = t;
    this.seq[i] = seq;
    this.fn[i] = fn;
    this.signal[i] = signal;
  }

  private grow(): void {
    const t = new Float64Array(this.t.length * 2);
    t.set(this.t);
    this.t = t;
    const seq = new Float64Array(this.seq.length * 2);
    seq.set(this.seq);
    this.seq = seq;
  }

  private up(i: number): void {
    const { t: ts, seq: seqs, fn: fns, signal: sigs } = this;
    const t = ts[i]!;
    const seq = seqs[i]!;
    const fn = fns[i]!;
    const signal = sigs[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = ts[p]!;
      if (t > pt || (t === pt && seq > seqs[p]!)) break;
      ts[i] = pt;
      seqs[i] = seqs[p]!;
      fns[i] = fns[p];
      sigs[i] = sigs[p];
      i = p;
    }
    ts[i] = t;
    seqs[i] = seq;
    fns[i] = fn;
    sigs[i] = signal;
  }

  private down(i: number): void {
    const { t: ts, seq: seqs, fn: fns, signal: sigs } = this;
    const n = this.n;
    const t = ts[i]!;
    const seq = seqs[i]!;
    const fn = fns[i]!;
    const signal = sigs[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n) {
        const rt = ts[r]!;
        const lt = ts[l]!;
        if (rt < lt || (rt === lt && seqs[r]! < seqs[l]!)) c = r;
      }
      const ct = ts[c]!;
      if (ct > t || (ct === t && seqs[c]! > seq)) break;
      ts[i] = ct;
      seqs[i] = seqs[c]!;
      fns[i] = fns[c];
      sigs[i] = sigs[c];
      i = c;
    }
    ts[i] = t;
    seqs[i] = seq;
    fns[i] = fn;
    sigs[i] = signal;
  }
}
