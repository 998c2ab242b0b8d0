// The shared AuthStore contract; each implementation's test file calls describeAuthStore().
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { AuthStore, Robot } from '../../../src/auth/store.js';

const robot = (name: string, extra: Partial<Robot> = {}): Robot => ({
  name,
  secretHash: 'ab'.repeat(32),
  permissions: [{ repository: 'team/*', actions: ['pull'] }],
  description: 'ci',
  createdAt: 1,
  expiresAt: null,
  revokedAt: null,
  ...extra,
});

export function describeAuthStore(name: string, make: () => Promise<{ store: AuthStore; cleanup(): Promise<void> }>): void {
  describe(`AuthStore contract: ${name}`, () => {
    let store: AuthStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => ({ store, cleanup } = await make()));
    afterEach(async () => cleanup());

    it('stores, updates and deletes users; deleting drops their roles', async () => {
      await store.putUser({ name: 'alice', passwordHash: 'h1', isAdmin: false, createdAt: 5 });
      await store.putUser({ name: 'alice', passwordHash: 'h2', isAdmin: true, createdAt: 9 });
      assert.deepEqual(await store.getUser('alice'), { name: 'alice', passwordHash: 'h2', isAdmin: true, createdAt: 5 });
      await store.createNamespace('team', 1);
      await store.bindRole({ namespace: 'team', principal: 'alice', role: 'developer' });
      assert.equal(await store.deleteUser('alice'), true);
      assert.equal(await store.getUser('alice'), null);
      assert.deepEqual(await store.listBindings({ principal: 'alice' }), []);
      assert.equal(await store.deleteUser('alice'), false);
    });

    it('keeps robots with grants, expiry and revocation', async () => {
      await store.putRobot(robot('robot$ci', { expiresAt: 1000 }));
      const r = await store.getRobot('robot$ci');
      assert.deepEqual(r?.permissions, [{ repository: 'team/*', actions: ['pull'] }]);
      assert.equal(r?.expiresAt, 1000);
      assert.equal(await store.revokeRobot('robot$ci', 50), true);
      assert.equal(await store.revokeRobot('robot$ci', 60), false, 'revoking twice changes nothing');
      assert.equal((await store.getRobot('robot$ci'))?.revokedAt, 50);
      assert.equal((await store.listRobots()).length, 1);
      assert.equal(await store.deleteRobot('robot$ci'), true);
      assert.equal(await store.getRobot('robot$ci'), null);
    });

    it('binds one role per principal and namespace', async () => {
      await store.createNamespace('team', 1);
      assert.equal(await store.createNamespace('team', 2), false);
      await store.bindRole({ namespace: 'team', principal: 'bob', role: 'puller' });
      await store.bindRole({ namespace: 'team', principal: 'bob', role: 'maintainer' });
      assert.deepEqual(await store.listBindings({ namespace: 'team' }), [{ namespace: 'team', principal: 'bob', role: 'maintainer' }]);
      assert.equal(await store.unbindRole('team', 'bob'), true);
      assert.deepEqual(await store.listBindings({}), []);
    });

    it('sets quotas and immutable tag patterns only on existing namespaces', async () => {
      assert.equal(await store.setQuota('ghost', 10), false);
      await store.createNamespace('team', 1);
      assert.equal(await store.setQuota('team', 1024), true);
      assert.equal(await store.setImmutableTags('team', ['v*', 'release-?']), true);
      const ns = await store.getNamespace('team');
      assert.equal(ns?.quotaBytes, 1024);
      assert.deepEqual(ns?.immutableTags, ['v*', 'release-?']);
    });

    it('treats repositories as private unless made public', async () => {
      assert.equal(await store.getVisibility('team/app'), 'private');
      await store.setVisibility('team/app', 'public');
      assert.equal(await store.getVisibility('team/app'), 'public');
      assert.equal(await store.getVisibility('team/app2'), 'private', 'exact repository, not a prefix');
      assert.deepEqual(await store.listPublicRepositories(), ['team/app']);
      await store.setVisibility('team/app', 'private');
      assert.equal(await store.getVisibility('team/app'), 'private');
    });

    it('deleting a namespace removes its roles, network policy and visibility rows only', async () => {
      await store.createNamespace('team', 1);
      await store.createNamespace('teamx', 1);
      await store.bindRole({ namespace: 'team', principal: 'bob', role: 'puller' });
      await store.putNetworkPolicy({ scope: 'team', internal: 'allowlist', internet: 'closed', cidrs: ['10.0.0.0/8'] });
      await store.setVisibility('team/app', 'public');
      await store.setVisibility('teamx/app', 'public');
      assert.equal(await store.deleteNamespace('team'), true);
      assert.deepEqual(await store.listBindings({}), []);
      assert.equal(await store.getNetworkPolicy('team'), null);
      assert.deepEqual(await store.listPublicRepositories(), ['teamx/app']);
    });

    it('stores network policies per scope', async () => {
      await store.putNetworkPolicy({ scope: '', internal: 'open', internet: 'allowlist', cidrs: ['203.0.113.0/24'] });
      assert.deepEqual(await store.getNetworkPolicy(''), { scope: '', internal: 'open', internet: 'allowlist', cidrs: ['203.0.113.0/24'] });
      assert.equal((await store.listNetworkPolicies()).length, 1);
      assert.equal(await store.deleteNetworkPolicy(''), true);
      assert.equal(await store.getNetworkPolicy(''), null);
    });

    it('appends audit records in batches and queries them newest first with filters', async () => {
      await store.appendAudit([
        { at: 10, actor: 'alice', action: 'push', target: 'team/app@sha256:1', clientIp: '10.0.0.1', outcome: 'ok' },
        { at: 20, actor: 'bob', action: 'pull', target: 'team/app:v1', clientIp: '10.0.0.2', outcome: 'ok' },
        { at: 30, actor: 'alice', action: 'ns.member.set', target: 'other', clientIp: '10.0.0.1', outcome: 'ok', detail: { role: 'puller' } },
      ]);
      const all = await store.queryAudit({ limit: 10 });
      assert.deepEqual(all.map((r) => r.at), [30, 20, 10]);
      assert.deepEqual(all[0]?.detail, { role: 'puller' });
      assert.deepEqual((await store.queryAudit({ actor: 'alice', limit: 10 })).map((r) => r.at), [30, 10]);
      assert.deepEqual((await store.queryAudit({ target: 'team/', limit: 10 })).map((r) => r.action), ['pull', 'push']);
      assert.deepEqual((await store.queryAudit({ since: 15, until: 25, limit: 10 })).map((r) => r.actor), ['bob']);
      assert.equal((await store.queryAudit({ limit: 1 })).length, 1);
    });
  });
}
