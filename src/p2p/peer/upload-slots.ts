// A peer server's upload slots with a short wait line. A request that finds every slot taken may
// wait a little for one instead of being told "busy" at once: without the line, a child that was
// refused backs off and asks again, and 70 % of the piece requests in a 1,000-node rollout were
// such refusals, each a round trip for the child, the parent and (in the simulator) three events.
// The line is short and the wait bounded, so a child is never kept long from a parent that could
// serve it sooner: past `queueLength` waiters, or after `queueWaitMs`, the answer is still busy.
// With `taskShareWindowMs` (--upload-task-share; off by default), a task may hold no more than its
// even share of the slots among the tasks asked for lately (task-shares.ts says why) when it
// arrives; a request over its share waits or is busy like one that found every slot taken.
import { TaskSlotShares } from './task-shares.js';

/** Requests that may wait for a slot at once, by default. The simulator follows this value. */
export const DEFAULT_UPLOAD_QUEUE = 1;
/** Longest wait for a slot before the answer is busy, by default (ms). */
export const DEFAULT_UPLOAD_QUEUE_WAIT_MS = 500;

export interface UploadSlotsOptions {
  slots: number;
  queueLength?: number;
  queueWaitMs?: number;
  /** Share the slots evenly among the tasks asked for within this many ms (TaskSlotShares); 0 or unset: first come, first served. */
  taskShareWindowMs?: number;
  /** Clock for the task shares (ms). Default Date.now. */
  now?: () => number;
}

interface Waiter {
  grant: (ok: boolean) => void;
  task: string | undefined;
}

export class UploadSlots {
  readonly slots: number;
  readonly queueLength: number;
  readonly queueWaitMs: number;
  private active = 0;
  private readonly line: Waiter[] = [];
  private readonly shares: TaskSlotShares | null;
  private readonly now: () => number;

  constructor(o: UploadSlotsOptions) {
    this.slots = Math.max(1, o.slots);
    this.queueLength = Math.max(0, o.queueLength ?? DEFAULT_UPLOAD_QUEUE);
    this.queueWaitMs = Math.max(0, o.queueWaitMs ?? DEFAULT_UPLOAD_QUEUE_WAIT_MS);
    this.shares = o.taskShareWindowMs && o.taskShareWindowMs > 0 ? new TaskSlotShares(this.slots, o.taskShareWindowMs) : null;
    this.now = o.now ?? Date.now;
  }

  get inUse(): number {
    return this.active;
  }

  get waiting(): number {
    return this.line.length;
  }

  /**
   * Takes a free slot if there is one and `task` is within its share. Every true must be matched by
   * one release(task). (A slot never stays free while someone waits in line unless that waiter is
   * over its task's share: release() hands every freed slot to the line first.)
   */
  tryAcquire(task?: string): boolean {
    if (task !== undefined) this.shares?.asked(task, this.now());
    if (this.active >= this.slots || !this.withinShare(task)) return false;
    this.active++;
    if (task !== undefined) this.shares?.took(task);
    return true;
  }

  private withinShare(task: string | undefined): boolean {
    return task === undefined || !this.shares || this.shares.mayTake(task, this.now());
  }

  /**
   * Waits in line for a slot: true once one is handed over (match it with release()); false (answer
   * busy) when the line is full, the wait runs out or `signal` aborts (the child went away).
   */
  wait(signal?: AbortSignal, task?: string): Promise<boolean> {
    if (this.tryAcquire(task)) return Promise.resolve(true);
    if (this.line.length >= this.queueLength || this.queueWaitMs === 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const leave = (ok: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', drop);
        resolve(ok);
      };
      const waiter: Waiter = { grant: leave, task };
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

  /**
   * Gives back a slot taken for `task`; the oldest waiter, if any, takes it over. The line stays
   * first come, first served whatever the shares: they decide who takes a free slot on arrival, and
   * a waiter over its share is one request past it at most (the line is that short).
   */
  release(task?: string): void {
    if (task !== undefined) this.shares?.gaveBack(task);
    const next = this.line.shift();
    if (!next) {
      this.active = Math.max(0, this.active - 1);
      return;
    }
    if (next.task !== undefined) this.shares?.took(next.task);
    next.grant(true);
  }
}
