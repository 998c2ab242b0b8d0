// Who gets an agent's uplink when several children download from it at once. Each piece request
// says how many pieces of the task its child holds (`?held=N`); under an upload cap the agent
// gives the children furthest behind the larger shares, instead of splitting the cap evenly.
//
// Why: a fleet finishes when its slowest node does. With even shares, a node that drew slow
// parents early stays behind to the end (the 10,000-node simulation's last node finished 1.6 s
// after its median). Weighting uploads toward the children with the least brings the laggards
// up while everyone else still gets a share. Simulated (docs/sim/REPORT.md, `uploadWeightBase`):
// 1,000 agents 1.39x the Kumar-Ross bound with even shares, 1.28x with base 0.7; 10,000 agents
// 1.56x -> 1.54x (98 % done 12 s in instead of 77 %). A strict order (base near 0) starves the
// others and did worse (1.35x). It costs a little where uploads are many and long (kraken-2600,
// 1.44x -> 1.47x: low-weight uploads hold upload slots longer); --upload-weight-base 1 = even.
//
// How: start-time fair queuing in front of the upload limit's own token bucket. Every take() is
// stamped with a start tag max(V, the upload's last finish tag) and a finish tag start + bytes /
// weight; the waiting take with the smallest start tag goes next, and V moves to it. An upload
// whose child's link is full stops taking, so the others get its share (work-conserving, like
// the flow model's weighted max-min sharing the simulator uses: src/sim/world.ts).
//
// Trust: `held` is the child's word. A child that always says 0 gets the largest share, never
// more than the cap; peers are cluster members (the cluster token), and the pieces are verified.
import type { ByteLimiter } from './rate-limiter.js';
import { abortReason } from './clock.js';

/** Weight ratio between an upload and the next one whose child holds more (see progressWeight). */
export const DEFAULT_UPLOAD_WEIGHT_BASE = 0.7;

/** An upload, as far as weighting goes: the pieces its child held when it asked (undefined: it did not say). */
export interface HeldCount {
  readonly held: number | undefined;
}

/**
 * The weight of one of several concurrent uploads (`all` includes it): base^(number of uploads
 * whose child held fewer). Equal holdings share equally; base 1 is an even split. An unknown
 * count ranks behind every known one. No allocation: the simulator calls it at every upload's
 * start and end.
 */
export function progressWeight(upload: HeldCount, all: Iterable<HeldCount>, base = DEFAULT_UPLOAD_WEIGHT_BASE): number {
  const mine = upload.held ?? Infinity;
  let ahead = 0;
  for (const other of all) if ((other.held ?? Infinity) < mine) ahead++;
  return base ** ahead;
}

/** One upload's handle: pace its bytes through take(), close() when the upload ends. */
export interface UploadShare extends ByteLimiter {
  readonly weight: number;
  close(): void;
}

interface Waiter {
  start: number;
  bytes: number;
  resolve: () => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Share extends UploadShare {
  held: number | undefined;
  weight: number;
  lastFinish: number;
}

export interface UploadSharesOptions {
  /** progressWeight's base; 1 = even shares. */
  base?: number;
}

export class UploadShares {
  private readonly open = new Set<Share>();
  private readonly queue: Waiter[] = [];
  private readonly base: number;
  private virtual = 0;
  /** The cap is paying off the last slice let go; the next is chosen when it has. */
  private busy = false;

  /** `cap` is the upload limit itself: its token bucket paces the bytes, this only orders them. */
  constructor(
    private readonly cap: ByteLimiter,
    opts: UploadSharesOptions = {},
  ) {
    this.base = opts.base ?? DEFAULT_UPLOAD_WEIGHT_BASE;
    if (!(this.base > 0 && this.base <= 1)) throw new RangeError(`upload weight base must be in (0, 1] (got ${this.base})`);
  }

  /** Uploads in progress. */
  get active(): number {
    return this.open.size;
  }

  /** Starts an upload to a child that holds `held` pieces of the task (undefined: it did not say). */
  openShare(held: number | undefined): UploadShare {
    const shares = this;
    const s: Share = {
      held,
      weight: 1,
      lastFinish: this.virtual,
      get rate() {
        return shares.cap.rate;
      },
      take: (bytes, signal) => this.take(s, bytes, signal),
      close: () => {
        if (this.open.delete(s)) this.reweigh();
      },
    };
    this.open.add(s);
    this.reweigh();
    return s;
  }

  private reweigh(): void {
    for (const s of this.open) s.weight = progressWeight(s, this.open, this.base);
  }

  private take(s: Share, bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.cap.rate <= 0 || bytes <= 0) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const start = Math.max(this.virtual, s.lastFinish);
    s.lastFinish = start + bytes / s.weight;
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { start, bytes, resolve, signal, onAbort: undefined };
      if (signal) {
        w.onAbort = () => {
          const i = this.queue.indexOf(w);
          if (i >= 0) this.queue.splice(i, 1);
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.queue.push(w);
      this.pump();
    });
  }

  /**
   * Lets the waiter with the smallest start tag go, and charges its bytes to the cap; the next is
   * chosen once the cap has paid that debt off, so uploads that went on meanwhile compete again.
   */
  private pump(): void {
    if (this.busy || this.queue.length === 0) return;
    let best = 0;
    for (let i = 1; i < this.queue.length; i++) if (this.queue[i]!.start < this.queue[best]!.start) best = i;
    const w = this.queue.splice(best, 1)[0]!;
    this.virtual = Math.max(this.virtual, w.start);
    if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort);
    w.resolve();
    this.busy = true;
    void this.cap.take(w.bytes).then(() => {
      this.busy = false;
      this.pump();
    });
  }
}
