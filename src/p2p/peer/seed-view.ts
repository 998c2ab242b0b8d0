// Super-seeding (BitTorrent's "initial seeding"): what a seed's bitfield shows its children.
//
// In a rollout every child of a seed picks among pieces only the seed has, each at random, so
// they ask for the same pieces: the fleet simulator's 2,500-agent DC had the seed send 254 pieces
// in its first second but only 119 distinct ones of 256 (docs/sim/ramp-experiments.md), and a
// piece that has not left the seed cannot spread. A seed therefore shows only the pieces it has
// served least (an upload counts when it starts, so requests in flight count too): a piece it
// serves more often than the least-served one is hidden until every piece has caught up, or for
// at most holdMs (so a child whose only source of a piece is the seed, its other holders gone,
// waits at most that long). Requests for hidden pieces are still served: a child's view is a
// long-poll behind. Pure and clock-free, so the simulator runs this same code.
import { Bitfield } from './bitfield.js';

/**
 * The hold the simulator was measured with (ms). Super-seeding is off by default (hold 0): the
 * 2,500-agent proxy gained ~1.3 % on the mean of three draws, the 10,000-agent fleet lost 2 % on
 * its one draw (docs/sim/ramp-experiments.md), so it waits for more draws and a real bench run.
 */
export const SUPER_SEED_HOLD_MS = 2000;

/** A bitfield long-poll on a view is answered this long after the view changes, so that a burst of uploads starting together costs each child one answer. */
export const VIEW_COALESCE_MS = 20;

export class SeedView {
  /** The pieces shown; updated in place, so a holder of it reads the current view. */
  readonly visible: Bitfield;
  /** Bumped at every change of `visible` (the bitfield long-poll's `view` parameter). */
  version = 0;
  /** Pieces whose visibility changed in the last served() or refresh() call. */
  readonly changed: number[] = [];
  private readonly served: Uint32Array;
  private readonly hiddenAt: Float64Array;
  /** The least any piece was served, and how many pieces were served that often. */
  private min = 0;
  private atMin: number;

  constructor(
    readonly numPieces: number,
    readonly holdMs: number,
  ) {
    this.served = new Uint32Array(numPieces);
    this.hiddenAt = new Float64Array(numPieces).fill(-1);
    this.visible = Bitfield.full(numPieces);
    this.atMin = numPieces;
  }

  /** An upload of `index` starts at `now`. Returns whether the view changed (see `changed`). */
  servedAt(index: number, now: number): boolean {
    this.changed.length = 0;
    if (index < 0 || index >= this.numPieces) return false;
    const n = ++this.served[index]!;
    if (n === this.min + 1 && --this.atMin === 0) {
      // Every piece has been served `min + 1` times: a new round, the pieces served that often shown again.
      this.min++;
      for (let i = 0; i < this.numPieces; i++) {
        if (this.served[i] === this.min) {
          this.atMin++;
          if (this.hiddenAt[i]! >= 0 && i !== index) this.show(i);
        }
      }
    }
    if (this.served[index]! > this.min && this.hiddenAt[index]! < 0) this.hide(index, now);
    return this.bump();
  }

  /** Shows the pieces hidden for holdMs by `now`. Returns whether the view changed. */
  refresh(now: number): boolean {
    this.changed.length = 0;
    for (let i = 0; i < this.numPieces; i++) {
      const at = this.hiddenAt[i]!;
      // The same sum as nextRevealAt's, so a timer set for that time finds the piece due.
      if (at >= 0 && at + this.holdMs <= now) this.show(i);
    }
    return this.bump();
  }

  /** When the next hidden piece is due to be shown (Infinity when none is hidden). */
  nextRevealAt(): number {
    let first = Infinity;
    for (let i = 0; i < this.numPieces; i++) {
      const at = this.hiddenAt[i]!;
      if (at >= 0 && at + this.holdMs < first) first = at + this.holdMs;
    }
    return first;
  }

  private hide(i: number, now: number): void {
    this.hiddenAt[i] = now;
    this.visible.clear(i);
    this.changed.push(i);
  }

  private show(i: number): void {
    this.hiddenAt[i] = -1;
    this.visible.set(i);
    this.changed.push(i);
  }

  private bump(): boolean {
    if (this.changed.length === 0) return false;
    this.version++;
    return true;
  }
}
