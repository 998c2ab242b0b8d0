// A peer server's upload slots with a short wait line. A request that finds every slot taken may
// wait a little for one instead of being told "busy" at once: without the line, a child that was
// refused backs off and asks again, and 70 % of the piece requests in a 1,000-node rollout were
// such refusals, each a round trip for the child, the parent and (in the simulator) three events.
// The line is short and the wait bounded, so a child is never kept long from a parent that could
// serve it sooner: past `queueLength` waiters, or after `queueWaitMs`, the answer is still busy.
// With `taskShareWindowMs` (--upload-task-share; off by default), a task may hold no more than its
// even share of the slots among the tasks asked for lately (task-shares.ts says why) when it
// arrives; a request over its share waits or is busy like one that found every slot taken.
// With `perChild` (a seed's default, uploadsPerChildFor), one child host holds at most that many
// slots at once and its next request is busy at once, without waiting in line: see
// uploadsPerChildFor for why.
import { TaskSlotShares } from './task-shares.js';

/** Requests that may wait for a slot at once, by default. The simulator follows this value. */
export const DEFAULT_UPLOAD_QUEUE = 1;
/** Longest wait for a slot before the answer is busy, by default (ms). */
export const DEFAULT_UPLOAD_QUEUE_WAIT_MS = 500;

/**
 * Uploads one child host may hold at once: 1 for a seed, unlimited (0) for an agent. In a rollout
 * every agent announces in the same second and the first few to reach the seed asked it for 5
 * pieces per layer, 8 in all: 4 hosts held its 32 slots, their downlinks split 8 ways, and the
 * seed's 10 Gbit/s uplink ran at 4 (a 2,500-agent fleet's simulated download use at 1 s: 9 %). One
 * slot per child spreads the seed over 32 hosts, which forward what they get at once (48 % at 1 s;
 * the 10,000-agent fleet's median 0.3 s sooner). docs/sim/ramp-experiments.md has the figures.
 * Simulated only: on the real 20-agent, 6 Mbit/s bench (2 seed slots) an A/B with the rule lifted
 * read the same, at a time when the simulator modelled neither reading clients nor the agents'
 * download cap paid up front (both since 2026-12-07; ramp-experiments.md).
 */
export function uploadsPerChildFor(role: 'seed' | 'agent'): number {
  return role === 'seed' ? 1 : 0;
}

export interface UploadSlotsOptions {
  slots: number;
  /** Slots one child may hold at once (its next request is busy at once); 0 or unset: no limit. */
  perChild?: number;
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
  child: string | undefined;
}

export class UploadSlots {
  readonly slots: number;
  readonly queueLength: number;
  readonly queueWaitMs: number;
  private active = 0;
  private readonly line: Waiter[] = [];
  private readonly shares: TaskSlotShares | null;
  private readonly now: () => number;
  private readonly perChild: number;
  /** Slots held per child (only with perChild). */
  private readonly byChild = new Map<string, number>();

  constructor(o: UploadSlotsOptions) {
    this.slots = Math.max(1, o.slots);
    this.queueLength = Math.max(0, o.queueLength ?? DEFAULT_UPLOAD_QUEUE);
    this.queueWaitMs = Math.max(0, o.queueWaitMs ?? DEFAULT_UPLOAD_QUEUE_WAIT_MS);
    this.shares = o.taskShareWindowMs && o.taskShareWindowMs > 0 ? new TaskSlotShares(this.slots, o.taskShareWindowMs) : null;
    this.now = o.now ?? Date.now;
    this.perChild = Math.max(0, o.perChild ?? 0);
  }

  get inUse(): number {
    return this.active;
  }

  get waiting(): number {
    return this.line.length;
  }

  /**
   * Takes a free slot if there is one, `task` is within its share and `child` within its own limit.
   * Every true must be matched by one release(task, child). (A slot never stays free while someone
   * waits in line unless that waiter is over its task's share: release() hands every freed slot to
   * the line first.)
   */
  tryAcquire(task?: string, child?: string): boolean {
    if (task !== undefined) this.shares?.asked(task, this.now());
    if (this.active >= this.slots || !this.withinShare(task) || this.childFull(child)) return false;
    this.active++;
    this.took(task, child);
    return true;
  }

  /** Whether `child` holds all the slots one child may: its request is busy at once, never in line. */
  childFull(child: string | undefined): boolean {
    return this.perChild > 0 && child !== undefined && (this.byChild.get(child) ?? 0) >= this.perChild;
  }

  private took(task: string | undefined, child: string | undefined): void {
    if (task !== undefined) this.shares?.took(task);
    if (this.perChild > 0 && child !== undefined) this.byChild.set(child, (this.byChild.get(child) ?? 0) + 1);
  }

  private withinShare(task: string | undefined): boolean {
    return task === undefined || !this.shares || this.shares.mayTake(task, this.now());
  }

  /**
   * Waits in line for a slot: true once one is handed over (match it with release()); false (answer
   * busy) when the line is full, the wait runs out or `signal` aborts (the child went away).
   */
  wait(signal?: AbortSignal, task?: string, child?: string): Promise<boolean> {
    if (this.tryAcquire(task, child)) return Promise.resolve(true);
    if (this.childFull(child) || this.line.length >= this.queueLength || this.queueWaitMs === 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const leave = (ok: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', drop);
        resolve(ok);
      };
      const waiter: Waiter = { grant: leave, task, child };
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
   * Gives back a slot taken for `task` and `child`; the oldest waiter, if any, takes it over. The
   * line stays first come, first served whatever the shares and the per-child limit: they decide
   * who takes a free slot on arrival, and a waiter past them is one request over at most (the line
   * is that short).
   */
  release(task?: string, child?: string): void {
    if (task !== undefined) this.shares?.gaveBack(task);
    if (this.perChild > 0 && child !== undefined) {
      const n = (this.byChild.get(child) ?? 0) - 1;
      if (n > 0) this.byChild.set(child, n);
      else this.byChild.delete(child);
    }
    const next = this.line.shift();
    if (!next) {
      this.active = Math.max(0, this.active - 1);
      return;
    }
    this.took(next.task, next.child);
    next.grant(true);
  }
}
