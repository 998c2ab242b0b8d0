// The chain engine with stand-in stages (the stages have their own tests): order, switches,
// retries with back-off, timeouts, blocking, notify-always, push trigger matching, and resume.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { SqliteChainStore } from '../../../src/chain/sqlite-store.js';
import { ChainEngine } from '../../../src/chain/engine.js';
import { chainSchema, globToRegExp, chainMatchesPush, type ChainInput, type StageName } from '../../../src/chain/model.js';
import type { StageContext, StageOutcome, StageRunners } from '../../../src/chain/stage.js';

const log = pino({ level: 'silent' });
const DIGEST = `sha256:${'c'.repeat(64)}` as const;
const quick = { retries: 0, backoffMs: 10, timeoutMs: 5_000 };

function recorder(calls: string[], behaviour: Partial<Record<StageName, (ctx: StageContext) => Promise<StageOutcome>>> = {}): StageRunners {
  const runners: StageRunners = {};
  for (const name of ['scan', 'gate', 'replicate', 'preheat', 'notify'] as const) {
    runners[name] = {
      async run(ctx) {
        calls.push(`${name}#${ctx.attempt}`);
        return behaviour[name] ? behaviour[name]!(ctx) : { status: 'succeeded', output: { by: name } };
      },
    };
  }
  return runners;
}

describe('chain engine', () => {
  let dir: string;
  let store: SqliteChainStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-engine-'));
    store = new SqliteChainStore(join(dir, 'chain.db'));
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const addChain = async (input: Omit<ChainInput, 'repositories'> & { repositories?: string[] }) => {
    const c = chainSchema.parse({ repositories: ['team/*'], scan: quick, gate: quick, replicate: quick, preheat: quick, notify: quick, ...input });
    await store.putChain(c);
    return c;
  };

  it('runs the stages in order and hands outputs on; switched-off stages are skipped', async () => {
    const calls: string[] = [];
    let seen: unknown;
    const engine = new ChainEngine({ store, log, stages: recorder(calls, { gate: async (ctx) => ((seen = ctx.outputOf('scan')), { status: 'succeeded' }) }) });
    const chain = await addChain({ name: 'order', preheat: { ...quick, enabled: false } });
    const run = await engine.trigger(chain, 'team/app', DIGEST, 'v1', 'manual');
    const done = await engine.waitFor(run.id);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(calls, ['scan#1', 'gate#1', 'replicate#1', 'notify#1']);
    assert.deepEqual(done.stages.map((s) => s.status), ['succeeded', 'succeeded', 'succeeded', 'skipped', 'succeeded']);
    assert.deepEqual(seen, { by: 'scan' });
    assert.ok(done.stages.every((s) => s.finishedAt !== undefined));
    const logs = await store.logs(run.id);
    assert.ok(logs.some((l) => l.stage === 'preheat' && /switched off/.test(l.message)), 'log says why preheat was skipped');
  });

  it('retries a failing stage with back-off and records the attempts', async () => {
    const calls: string[] = [];
    let failures = 2;
    const engine = new ChainEngine({
      store,
      log,
      stages: recorder(calls, { replicate: async () => (failures-- > 0 ? Promise.reject(new Error('target down')) : { status: 'succeeded' }) }),
    });
    const chain = await addChain({ name: 'retry', replicate: { ...quick, retries: 3 } });
    const done = await engine.waitFor((await engine.trigger(chain, 'team/app', DIGEST, 'v1', 'manual')).id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.stages[2]!.attempts, 3);
    assert.equal((await store.logs(done.id)).filter((l) => /target down; retrying/.test(l.message)).length, 2);
  });

  it('fails a stage that outlives its timeout, skips the rest, still notifies with the outcome', async () => {
    const calls: string[] = [];
    let notified: StageContext['outcome'];
    const engine = new ChainEngine({
      store,
      log,
      stages: recorder(calls, {
        replicate: () => new Promise(() => {}), // hangs, ignoring its signal
        notify: async (ctx) => ((notified = ctx.outcome), { status: 'succeeded' }),
      }),
    });
    const chain = await addChain({ name: 'timeout', replicate: { ...quick, timeoutMs: 200, retries: 1 } });
    const done = await engine.waitFor((await engine.trigger(chain, 'team/app', DIGEST, 'v1', 'manual')).id);
    assert.equal(done.status, 'failed');
    assert.match(done.reason ?? '', /replicate failed: timed out after 200 ms/);
    assert.deepEqual(done.stages.map((s) => s.status), ['succeeded', 'succeeded', 'failed', 'skipped', 'succeeded']);
    assert.equal(done.stages[2]!.attempts, 2);
    assert.equal(notified?.status, 'failed');
  });

  it('a blocking gate stops the chain before replication, says why, and notify still runs', async () => {
    const calls: string[] = [];
    const engine = new ChainEngine({ store, log, stages: recorder(calls, { gate: async () => ({ status: 'blocked', reason: 'policy team: CVE-1 (HIGH)' }) }) });
    const chain = await addChain({ name: 'block' });
    const done = await engine.waitFor((await engine.trigger(chain, 'team/app', DIGEST, 'v1', 'manual')).id);
    assert.equal(done.status, 'blocked');
    assert.equal(done.reason, 'policy team: CVE-1 (HIGH)');
    assert.deepEqual(calls, ['scan#1', 'gate#1', 'notify#1']);
    assert.deepEqual(done.stages.map((s) => s.status), ['succeeded', 'blocked', 'skipped', 'skipped', 'succeeded']);
  });

  it('triggers on pushes whose repository and tag match, not on referrers or other tags', async () => {
    const calls: string[] = [];
    const engine = new ChainEngine({ store, log, stages: recorder(calls) });
    await addChain({ name: 'trigger', repositories: ['shop/**'], tags: ['v*'] });
    engine.onManifestPushed({ repo: 'shop/web/app', digest: DIGEST, mediaType: 'x', tags: ['latest', 'v2'] });
    engine.onManifestPushed({ repo: 'shop/web/app', digest: DIGEST, mediaType: 'x', tags: ['latest'] });
    engine.onManifestPushed({ repo: 'shop/app', digest: DIGEST, mediaType: 'x', tags: ['v3'], subject: DIGEST });
    engine.onManifestPushed({ repo: 'other/app', digest: DIGEST, mediaType: 'x', tags: ['v4'] });
    const deadline = Date.now() + 5_000;
    while ((await store.listRuns({ chain: 'trigger' })).length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    const runs = await store.listRuns({ chain: 'trigger' });
    assert.deepEqual(runs.map((r) => [r.repo, r.tag, r.trigger]), [['shop/web/app', 'v2', 'push']]);
    await engine.waitFor(runs[0]!.id);
  });

  it('resumes an interrupted run after a restart without redoing finished stages', async () => {
    const calls: string[] = [];
    let release!: () => void;
    const first = new ChainEngine({ store, log, stages: recorder(calls, { replicate: () => new Promise((r) => (release = () => r({ status: 'succeeded' }))) }) });
    const chain = await addChain({ name: 'resume' });
    const run = await first.trigger(chain, 'team/app', DIGEST, 'v1', 'push');
    const deadline = Date.now() + 5_000;
    while (!calls.includes('replicate#1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await first.stop(); // the process goes away mid-replicate
    assert.equal((await store.getRun(run.id))?.status, 'running');
    release();

    const calls2: string[] = [];
    const second = new ChainEngine({ store, log, stages: recorder(calls2) });
    await second.start();
    const done = await second.waitFor(run.id);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(calls2, ['replicate#1', 'preheat#1', 'notify#1'], 'scan and gate are not redone');
    assert.ok((await store.logs(run.id)).some((l) => /resuming after a restart/.test(l.message)));
  });
});

describe('chain matching', () => {
  it('globs: * within a component, ** across, anchored', () => {
    assert.ok(globToRegExp('team/*').test('team/app'));
    assert.ok(!globToRegExp('team/*').test('team/a/b'));
    assert.ok(globToRegExp('team/**').test('team/a/b'));
    assert.ok(globToRegExp('team/**').test('team'));
    assert.ok(!globToRegExp('team/*').test('teamx/app'));
    assert.ok(globToRegExp('v?.*').test('v1.2'));
    assert.ok(!globToRegExp('a.b').test('axb'));
  });
  it('onPush off never matches a push', () => {
    const c = chainSchema.parse({ name: 'm', repositories: ['**'], onPush: false });
    assert.equal(chainMatchesPush(c, 'x', ['t']), undefined);
    assert.equal(chainMatchesPush({ ...c, onPush: true }, 'x', ['t']), 't');
  });
});
