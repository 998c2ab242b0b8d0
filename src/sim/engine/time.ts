// Virtual time for the fleet simulator. It implements the peer library's Clock, so the real
// TaskDownloader runs unmodified on it: `sleep` resolves when the agenda reaches its time, never
// on a wall-clock timer. The run loop takes every entry due at the earliest time, runs them, and
// when any of them settled a promise it lets Node drain the microtask queue (one setImmediate)
// before time moves on, so every async continuation sees the instant it was woken at.
import { abortReason, type Clock } from '../../p2p/peer/clock.js';
import { EventQueue } from './queue.js';

export interface RunOptions {
  /** Stop before the first event later than this (virtual ms). */
  until?: number;
  /** Checked between instants; true stops the run. */
  stop?: () => boolean;
  /** Called between instants at most every `everyMs` of wall time (progress bars). */
  onWall?: { everyMs: number; fn: (now: number) => void };
}

export class VirtualTime implements Clock {
  private t = 0;
  private q = new EventQueue();
  /** Set when an event settled a promise: the loop drains microtasks before moving on. */
  private settled = false;
  /** Events run so far (a cost measure for the report). */
  events = 0;

  now(): number {
    return this.t;
  }

  /** Runs `fn` at virtual time `t` (not before now). Plain callbacks: no microtask drain needed. */
  at(t: number, fn: () => void, signal?: AbortSignal): void {
    this.q.push(Math.max(t, this.t), signal ? () => void (signal.aborted || fn()) : fn, signal);
  }

  after(ms: number, fn: () => void, signal?: AbortSignal): void {
    this.at(this.t + Math.max(0, ms), fn, signal);
  }

  /** Call after settling a promise from a plain callback, so its continuations run at this instant. */
  markSettled(): void {
    this.settled = true;
  }

  /**
   * Clock.sleep in virtual time. The abort is noticed lazily, when the sleep comes due (then it
   * rejects) or when the agenda is compacted (then it is dropped): every caller in the peer library either races the
   * sleep against its own wake-up or only needs the rejection to stop a loop, and an AbortSignal
   * listener per sleep would dominate the simulation's cost.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      this.q.push(
        this.t + Math.max(0, ms),
        () => {
          this.settled = true;
          if (signal?.aborted) reject(abortReason(signal));
          else resolve();
        },
        // Lets compact() drop it once aborted: the promise then never settles, which every caller
        // tolerates (they raced it against their own wake-up or only needed it to end a loop).
        signal,
      );
    });
  }

  get pending(): number {
    return this.q.size;
  }

  /** Forgets everything scheduled (the run is over; lets the simulated world be collected). */
  clear(): void {
    this.q = new EventQueue();
  }

  /** Runs the agenda until it is empty, `until` is passed, or `stop` says so. */
  async run(opts: RunOptions = {}): Promise<void> {
    const until = opts.until ?? Infinity;
    const wall = opts.onWall;
    let nextWall = wall ? performance.now() + wall.everyMs : Infinity;
    const drain = () => new Promise<void>((r) => setImmediate(r));
    for (;;) {
      if (opts.stop?.()) return;
      const t = this.q.peekTime();
      if (t === Infinity || t > until) return;
      this.t = t;
      do {
        const fn = this.q.pop()!;
        this.events++;
        fn();
      } while (this.q.peekTime() === t);
      if (this.settled) {
        this.settled = false;
        await drain();
      }
      if (wall && (this.events & 1023) === 0 && performance.now() >= nextWall) {
        nextWall = performance.now() + wall.everyMs;
        wall.fn(this.t);
      }
    }
  }
}
