// When each peer should announce next, so that planned announces never exceed the budget in any
// second. The interval alone (members / budget) keeps the *mean* rate within budget, but a fleet
// that starts in the same instant re-announces in the same instant too: 10,000 agents x 4 layers
// announced 42k times in the first second and again 33k and 27k times 2 s and 4 s later, each
// burst 1.5-2.6 s of one core. The calendar counts the announces it has planned per second and
// moves a reply's next announce to the first later second with room: the same instant the plain
// interval gives whenever there is room, so a fleet within budget sees no change.

export class AnnounceCalendar {
  /** Absolute second each ring slot counts for, and how many announces are planned in it. */
  private readonly second: Float64Array;
  private readonly count: Uint32Array;

  constructor(
    private readonly perSecond: number,
    /** The furthest ahead a next announce may be planned. */
    private readonly horizonMs: number,
  ) {
    const slots = Math.ceil(horizonMs / 1000) + 2;
    this.second = new Float64Array(slots).fill(-1);
    this.count = new Uint32Array(slots);
  }

  /**
   * The interval to hand out at `now` for a next announce wanted `wantedMs` from now: wantedMs
   * when its second has room, else the start of the first later second with room plus
   * a random share (`random`, drawn only then) of that second. The horizon wins when every
   * second up to it is full.
   */
  plan(now: number, wantedMs: number, random: () => number): number {
    const at = now + wantedMs;
    const first = Math.floor(at / 1000);
    const last = Math.max(first, Math.floor((now + this.horizonMs) / 1000));
    for (let s = first; s <= last; s++) {
      if (!this.take(s)) continue;
      return s === first ? wantedMs : Math.max(wantedMs, Math.round(s * 1000 + random() * 1000 - now));
    }
    return Math.max(wantedMs, this.horizonMs);
  }

  private take(s: number): boolean {
    const i = s % this.second.length;
    if (this.second[i] !== s) {
      this.second[i] = s;
      this.count[i] = 0;
    }
    if (this.count[i]! >= this.perSecond) return false;
    this.count[i]!++;
    return true;
  }
}
