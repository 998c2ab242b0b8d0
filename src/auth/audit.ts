// Audit trail, written off the request path: records queue in memory and are flushed in batches
// (one SQLite transaction each). Pull records are the bulk; when the queue is full or the
// registry is shedding load they are dropped and counted, while pushes, deletes, logins and
// permission changes are always kept.
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
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  dropped = 0;

  constructor(private readonly opts: AuditLogOptions) {}

  /** Queues a record. `droppable` records (pulls) give way under load. */
  record(rec: AuditRecord, droppable = false): void {
    if (droppable && (this.queue.length >= (this.opts.maxQueue ?? 10_000) || this.opts.overloaded?.())) {
      this.dropped++;
      return;
    }
    this.queue.push(rec);
    if (this.queue.length >= (this.opts.maxBatch ?? 500)) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.opts.flushIntervalMs ?? 250);
      this.timer.unref();
    }
  }

  /** Writes everything queued so far; resolves when it is durable. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue;
    this.queue = [];
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
