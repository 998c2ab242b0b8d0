// Audit trail, written off the request path: records queue in memory and are flushed in batches
// (one SQLite transaction each). Pull records are the bulk; when the queue is full or the
// registry is shedding load they are dropped and counted, while pushes, deletes, failed logins
// and permission changes are always kept. Repeats of a droppable record (same actor, action,
// target, address and outcome) within one flush window become one record with a count: a node
// pulling one image many times costs one row, not thousands.
import type { Logger } from 'pino';
import type { AuditRecord, AuthStore } from './store.js';

export interface AuditLogOptions {
  store: AuthStore;
  log: Logger;
  flushIntervalMs?: number;
  maxBatch?: number;
  /** Queue length above which droppable records are dropped. */
  maxQueue?: number;
  /** True while the registry is shedding load. */
  overloaded?: () => boolean;
}

export class AuditLog {
  private queue: AuditRecord[] = [];
  private readonly coalesced = new Map<string, AuditRecord & { count: number }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  dropped = 0;

  constructor(private readonly opts: AuditLogOptions) {}

  /** Queues a record. `droppable` records (pulls) give way under load. */
  record(rec: AuditRecord, droppable = false): void {
    if (droppable) {
      const key = `${rec.actor}\0${rec.action}\0${rec.target}\0${rec.clientIp}\0${rec.outcome}`;
      const seen = this.coalesced.get(key);
      if (seen) {
        seen.count++;
        return;
      }
      if (this.pending() >= (this.opts.maxQueue ?? 10_000) || this.opts.overloaded?.()) {
        this.dropped++;
        return;
      }
      this.coalesced.set(key, { ...rec, count: 1 });
    } else {
      this.queue.push(rec);
    }
    if (this.pending() >= (this.opts.maxBatch ?? 500)) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.opts.flushIntervalMs ?? 250);
      this.timer.unref();
    }
  }

  private pending(): number {
    return this.queue.length + this.coalesced.size;
  }

  /** Writes everything queued so far; resolves when it is durable. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue;
    this.queue = [];
    for (const { count, ...rec } of this.coalesced.values()) batch.push(count > 1 ? { ...rec, detail: { ...rec.detail, count } } : rec);
    this.coalesced.clear();
    this.flushing = this.flushing.then(async () => {
      if (batch.length === 0) return;
      try {
        await this.opts.store.appendAudit(batch);
      } catch (err) {
        this.opts.log.error({ err, records: batch.length }, 'audit batch could not be written');
      }
    });
    return this.flushing;
  }
}
