// A peer server's upload slots with a short wait line. A request that finds every slot taken may
// wait a little for one instead of being told "busy" at once: without the line, a child that was
// refused backs off and asks again, and 70 % of the piece requests in a 1,000-node rollout were
// such refusals, each a round trip for the child, the parent and (in the simulator) three events.
// The line is short and the wait bounded, so a child is never kept long from a parent that could
// serve it sooner: past `queueLength` waiters, or after `queueWaitMs`, the answer is still busy.

/** Requests that may wait for a slot at once, by default. The simulator follows this value. */
export const DEFAULT_UPLOAD_QUEUE = 1;
/** Longest wait for a slot before the answer is busy, by default (ms). */
export const DEFAULT_UPLOAD_QUEUE_WAIT_MS = 500;

export interface UploadSlotsOptions {
  slots: number;
  queueLength?: number;
  queueWaitMs?: number;
}

interface Waiter {
  grant: (ok: boolean) => void;
}

export class UploadSlots {
  readonly slots: number;
  readonly queueLength: number;
  readonly queueWaitMs: number;
  private active = 0;
  private readonly line: Waiter[] = [];

  constructor(o: UploadSlotsOptions) {
    this.slots = Math.max(1, o.slots);
    this.queueLength = Math.max(0, o.queueLength ?? DEFAULT_UPLOAD_QUEUE);
    this.queueWaitMs = Math.max(0, o.queueWaitMs ?? DEFAULT_UPLOAD_QUEUE_WAIT_MS);
  }

  get inUse(): number {
    return this.active;
  }

  get waiting(): number {
    return this.line.length;
  }

  /** Takes a free slot if there is one (and nobody is waiting for it). Every true must be matched by one release(). */
  tryAcquire(): boolean {
    if (this.active >= this.slots || this.line.length > 0) return false;
    this.active++;
    return true;
  }

  /**
   * Waits in line for a slot: true once one is handed over (match it with release()); false (answer
   * busy) when the line is full, the wait runs out or `signal` aborts (the child went away).
   */
  wait(signal?: AbortSignal): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    if (this.line.length >= this.queueLength || this.queueWaitMs === 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const leave = (ok: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', drop);
        resolve(ok);
      };
      const waiter: Waiter = { grant: leave };
      const drop = () => {
        const i = this.line.indexOf(waiter);
        if (i >= 0) this.line.splice(i, 1);
        leave(false);
      };
      const timer = setTimeout(drop, this.queueWaitMs);
      signal?.addEventListener('abort', drop, { once: true });
      this.line.push(waiter);
    });
  }

  /** Gives a slot back; the oldest waiter, if any, takes it over. */
  release(): void {
    const next = this.line.shift();
    if (next) next.grant(true);
    else this.active = Math.max(0, this.active - 1);
  }
}
