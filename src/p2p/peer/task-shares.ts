// Even shares of a peer server's upload slots among the tasks (blobs) it is asked for: off by
// default, on with `--upload-task-share` (UploadSlots applies it; the fleet simulator's seeds use
// the same class with a scenario's `seedTaskShareMs`).
//
// Why it exists: a seed is the way into every layer's swarm of its data centre, and its slots go
// to whoever asks first. In the 2,500-agent simulation (one seed, 4 layers pulled at once) two
// layers held 11-14 of the seed's 32 slots for four seconds while another got 2-4: children that
// landed a piece asked again at once and took their slot back, those of the starved layer met
// "busy" and backed off, and that layer's swarm had nothing to trade. Shared by layer, that fleet
// finished at 1.31x the bound instead of 1.35x (mean of five draws), but the 1,000-agent fleet of
// two data centres (scenarios/fleet-1k.yaml) did worse, 1.35x against 1.29x (mean of four draws;
// a better median, a later tail), and 10,000 agents did not move: so it stays off by default
// (docs/sim/ramp-experiments.md has the figures).
//
// Shares follow demand: only tasks asked for within `windowMs` count, so a seed serving one blob
// lends it every slot, and a task nobody asks for any more stops taking a share.

/** How long a request keeps its task counted among those sharing the slots (ms). */
export const DEFAULT_TASK_SHARE_WINDOW_MS = 1000;

export class TaskSlotShares {
  /** When each task was last asked for. */
  private readonly askedAt = new Map<string, number>();
  /** Slots each task holds now. */
  private readonly held = new Map<string, number>();

  constructor(
    readonly slots: number,
    readonly windowMs = DEFAULT_TASK_SHARE_WINDOW_MS,
  ) {}

  /** A request for `task` arrived (whether or not it gets a slot). */
  asked(task: string, now: number): void {
    this.askedAt.set(task, now);
  }

  /** Slots one task may hold now: an even share, rounded up, among the tasks asked for within the window. */
  cap(now: number): number {
    let tasks = 0;
    for (const [task, at] of this.askedAt) {
      if (now - at < this.windowMs) tasks++;
      else if (!this.held.has(task)) this.askedAt.delete(task);
    }
    return Math.max(1, Math.ceil(this.slots / Math.max(1, tasks)));
  }

  mayTake(task: string, now: number): boolean {
    return this.holding(task) < this.cap(now);
  }

  holding(task: string): number {
    return this.held.get(task) ?? 0;
  }

  took(task: string): void {
    this.held.set(task, this.holding(task) + 1);
  }

  gaveBack(task: string): void {
    const n = this.holding(task) - 1;
    if (n > 0) this.held.set(task, n);
    else this.held.delete(task);
  }
}
