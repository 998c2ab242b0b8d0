import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteAuthStore } from '../../../src/auth/sqlite-store.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { AuditLog } from '../../../src/auth/audit.js';
import { describeAuthStore } from './auth-store.suite.js';

describeAuthStore('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-auth-'));
  const store = new SqliteAuthStore(join(dir, 'auth.db'));
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('audit log', () => {
  it('batches records, coalesces repeated pulls with a count, drops droppable ones under load', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-audit-'));
    const store = new SqliteAuthStore(join(dir, 'auth.db'));
    let overloaded = false;
    const audit = new AuditLog({ store, log: pino({ level: 'silent' }), flushIntervalMs: 60_000, overloaded: () => overloaded });
    try {
      const pull = { at: 1, actor: 'node-1', action: 'pull', target: 'team/app:1', clientIp: '10.0.0.1', outcome: 'ok' };
      for (let i = 0; i < 100; i++) audit.record({ ...pull, at: i }, true);
      audit.record({ ...pull, actor: 'node-2' }, true);
      audit.record({ at: 5, actor: 'alice', action: 'push', target: 'team/app@sha256:1', clientIp: '10.0.0.9', outcome: 'ok' });
      assert.deepEqual(await store.queryAudit({ limit: 10 }), [], 'nothing written before the flush');
      overloaded = true;
      audit.record({ ...pull, actor: 'node-3' }, true);
      audit.record({ at: 6, actor: 'alice', action: 'delete', target: 'team/app:1', clientIp: '10.0.0.9', outcome: 'ok' });
      await audit.flush();
      const rows = await store.queryAudit({ limit: 10 });
      assert.equal(rows.length, 4, 'two coalesced pulls, the push and the delete; node-3 dropped');
      assert.equal(rows.find((r) => r.actor === 'node-1')?.detail?.count, 100);
      assert.equal(audit.dropped, 1);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
