// The ChainStore contract: every implementation (SQLite today, PostgreSQL later) passes this suite.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chainSchema, STAGE_NAMES, type Run } from '../../../src/chain/model.js';
import type { ChainStore } from '../../../src/chain/store.js';

export function describeChainStore(name: string, open: () => Promise<{ store: ChainStore; reopen?: () => Promise<ChainStore>; cleanup(): Promise<void> }>): void {
  describe(`ChainStore contract: ${name}`, () => {
    let h: Awaited<ReturnType<typeof open>>;
    let store: ChainStore;
    before(async () => {
      h = await open();
      store = h.store;
    });
    after(async () => h.cleanup());

    const run = (id: string, chain: string, createdAt: number, status: Run['status'] = 'queued'): Run => ({
      id,
      chain,
      repo: 'team/app',
      digest: `sha256:${'a'.repeat(64)}`,
      tag: 'v1',
      trigger: 'push',
      status,
      createdAt,
      stages: STAGE_NAMES.map((n) => ({ name: n, status: 'pending', attempts: 0 })),
    });

    it('stores, replaces, lists and deletes chains', async () => {
      const c = chainSchema.parse({ name: 'c1', repositories: ['team/*'] });
      await store.putChain(c);
      await store.putChain({ ...c, tags: ['v*'] });
      await store.putChain(chainSchema.parse({ name: 'c0', repositories: ['x'] }));
      assert.deepEqual((await store.getChain('c1'))?.tags, ['v*']);
      assert.deepEqual((await store.listChains()).map((x) => x.name), ['c0', 'c1']);
      assert.equal(await store.deleteChain('c0'), true);
      assert.equal(await store.deleteChain('c0'), false);
      assert.equal(await store.getChain('c0'), null);
    });

    it('keeps runs with their stages; lists newest first with filters; finds unfinished ones', async () => {
      await store.createRun(run('r1', 'c1', 1000));
      await store.createRun(run('r2', 'c1', 2000));
      await store.createRun(run('r3', 'other', 3000));
      await store.createRun({ ...run('r4', 'c1', 500, 'succeeded'), digest: `sha256:${'b'.repeat(64)}` });
      const r1 = (await store.getRun('r1'))!;
      r1.status = 'succeeded';
      r1.stages[0]!.status = 'succeeded';
      r1.stages[0]!.output = { findings: [] };
      await store.updateRun(r1);
      assert.deepEqual((await store.getRun('r1'))?.stages[0], { name: 'scan', status: 'succeeded', attempts: 0, output: { findings: [] } });
      assert.deepEqual((await store.listRuns()).map((r) => r.id), ['r3', 'r2', 'r1', 'r4']);
      assert.deepEqual((await store.listRuns({ chain: 'c1' })).map((r) => r.id), ['r2', 'r1', 'r4']);
      assert.deepEqual((await store.listRuns({ chain: 'c1', digest: `sha256:${'b'.repeat(64)}` })).map((r) => r.id), ['r4']);
      assert.deepEqual((await store.listRuns({ status: 'succeeded' })).map((r) => r.id), ['r1', 'r4']);
      assert.deepEqual((await store.listRuns({ limit: 1 })).map((r) => r.id), ['r3']);
      assert.deepEqual((await store.unfinishedRuns()).map((r) => r.id), ['r2', 'r3']);
      await assert.rejects(store.updateRun(run('nope', 'c1', 1)));
    });

    it('appends log lines in order and pages them by seq', async () => {
      const a = await store.appendLog('r2', 'scan', 'one', 10);
      const b = await store.appendLog('r2', 'gate', 'two', 11);
      await store.appendLog('r3', 'run', 'elsewhere', 12);
      assert.ok(b.seq > a.seq);
      assert.deepEqual((await store.logs('r2')).map((l) => l.message), ['one', 'two']);
      assert.deepEqual((await store.logs('r2', a.seq)).map((l) => [l.stage, l.message]), [['gate', 'two']]);
    });

    it('keeps gate policies and blocked images', async () => {
      await store.putGatePolicy({ namespace: 'team', severity: 'HIGH', allow: ['CVE-1'] });
      await store.putGatePolicy({ namespace: 'team', severity: 'CRITICAL', allow: [] });
      assert.deepEqual(await store.listGatePolicies(), [{ namespace: 'team', severity: 'CRITICAL', allow: [] }]);
      const digest = `sha256:${'b'.repeat(64)}` as const;
      await store.setBlocked('team/app', digest, { repo: 'team/app', digest, policy: 'team', findings: [{ id: 'CVE-2', severity: 'HIGH', package: 'x@1' }], blockedAt: 1, runId: 'r1' });
      assert.equal((await store.listBlocked()).length, 1);
      await store.setBlocked('team/app', digest, null);
      assert.equal((await store.listBlocked()).length, 0);
      assert.equal(await store.deleteGatePolicy('team'), true);
      assert.equal(await store.deleteGatePolicy('team'), false);
    });

    it('survives a reopen (runs resume from what was persisted)', async () => {
      if (!h.reopen) return;
      store = await h.reopen();
      assert.deepEqual((await store.unfinishedRuns()).map((r) => r.id), ['r2', 'r3']);
      assert.equal((await store.getChain('c1'))?.name, 'c1');
    });
  });
}
