// A tiny fleet end to end, through the real scheduler: completes, near the bound, one copy from
// the registry with P2P vs one per agent direct, deterministic for a seed, survivors of crashes
// complete, and the thin engine agrees with the real TaskDownloader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScenario } from '../../../src/sim/scenario.js';
import { runVariant, type VariantResult } from '../../../src/sim/run.js';
import { checkThinWalk } from '../../../src/sim/engines/thin.js';
import { DEFAULT_UPLOAD_WEIGHT_BASE } from '../../../src/p2p/peer/upload-shares.js';
import { DEFAULT_UPLOAD_QUEUE, DEFAULT_UPLOAD_QUEUE_WAIT_MS, uploadsPerChildFor } from '../../../src/p2p/peer/upload-slots.js';
import { SUPER_SEED_HOLD_MS } from '../../../src/p2p/peer/seed-view.js';
import { replayExecArgv } from '../../../src/sim/sched-replay.js';

const TINY = `
name: tiny
seed: 7
nodes: 20
image:
  layers: [24MiB, 8MiB]
topology: {dcs: 1, zonesPerDc: 2, racksPerZone: 2, rackOversubscription: 2}
nic: 1Gbit
seeds: {perDc: 1, nic: 2Gbit}
registry: {egress: 10Gbit}
failure: {fraction: 0.2, atBoundFraction: 0.8, mode: crash}
variants:
  - direct
  - p2p
  - p2p-preheat
  - fail-10pct
  - {name: hang, mode: p2p-preheat, failure: {fraction: 0.2, atBoundFraction: 0.8, mode: hang}}
  - {name: thin, mode: p2p-preheat, engine: thin}
`;

const s = parseScenario(TINY);
const results = new Map<string, VariantResult>();
const run = async (name: string) => {
  let r = results.get(name);
  if (!r) results.set(name, (r = await runVariant(s, s.variants.find((v) => v.name === name)!)));
  return r;
};
const F = 32 * 1024 * 1024;

test('direct: every agent pulls the whole image from the registry, at the client-server bound', async () => {
  const r = await run('direct');
  assert.equal(r.completed, 20);
  assert.equal(r.origin_bytes, 20 * F);
  assert.ok(r.ratio_to_bound >= 1 - 1e-9 && r.ratio_to_bound < 1.1, `ratio ${r.ratio_to_bound}`);
  assert.equal(r.scheduler, null);
});

test('p2p with a cold seed: the registry serves the image once; everyone completes near the bound', async () => {
  const r = await run('p2p');
  assert.equal(r.engine, 'downloader', 'a tiny fleet runs the real TaskDownloader');
  assert.equal(r.completed, 20);
  assert.ok(Math.abs(r.origin_ratio - 1) < 1e-9, `origin ${r.origin_ratio} x the image`);
  assert.equal(r.fallbacks, 0);
  assert.ok(r.ratio_to_bound >= 1 && r.ratio_to_bound < 15, `ratio ${r.ratio_to_bound}`);
  assert.ok(r.scheduler && r.scheduler.announces > 20 && r.scheduler_peak_msgs_per_s > 0);
  assert.ok(r.scheduler.replayExact, 'the timed replay reproduces the run');
  assert.equal(r.scheduler.measuredIn, 'child-process', 'measured in a process of its own');
  assert.ok(r.bytes_from_peers > r.bytes_from_seeds, 'agents serve each other more than the seed serves them');
});

test('p2p after preheat: nothing from the registry during the rollout', async () => {
  const r = await run('p2p-preheat');
  assert.equal(r.completed, 20);
  assert.equal(r.origin_ratio_rollout, 0);
  assert.equal(r.preheat_origin_bytes, F, 'one seed preheated once');
  assert.ok(r.ratio_to_bound >= 1 && r.ratio_to_bound < 10, `ratio ${r.ratio_to_bound}`);
  assert.ok(r.max_s < (await run('p2p')).max_s, 'preheat takes the seed fetch off the critical path');
});

test('determinism: the same seed gives the same run', async () => {
  const a = await run('p2p-preheat');
  const b = await runVariant(s, s.variants.find((v) => v.name === 'p2p-preheat')!);
  for (const k of ['p50_s', 'p99_s', 'max_s', 'events', 'flows', 'origin_bytes', 'bytes_from_peers'] as const) assert.equal(b[k], a[k], k);
  assert.deepEqual(b.cdf, a.cdf);
  assert.equal(b.scheduler!.messages, a.scheduler!.messages);
});

test('failures: 20 % of agents crash (or hang) mid-transfer and every survivor completes', async () => {
  for (const name of ['fail-10pct', 'hang']) {
    const r = await run(name);
    assert.equal(r.killed, 4, name);
    assert.equal(r.expected, 16, name);
    assert.equal(r.completed, 16, `${name}: survivors done`);
    assert.ok(Number.isFinite(r.max_s), name);
  }
});

test('the thin engine agrees with the real TaskDownloader on the same fleet', async () => {
  const real = await run('p2p-preheat');
  const thin = await run('thin');
  assert.equal(thin.engine, 'thin');
  assert.equal(thin.completed, 20);
  assert.ok(Math.abs(thin.max_s - real.max_s) / real.max_s < 0.25, `max ${thin.max_s} vs ${real.max_s}`);
  assert.ok(Math.abs(thin.p50_s - real.p50_s) / real.p50_s < 0.25, `p50 ${thin.p50_s} vs ${real.p50_s}`);
});

test('thin engine: the walk over a landed piece\'s children skips only children that could not request it, every pick reads parents\' bitfield copies equal to the real ones, and a download that can request wakes when a parent\'s busy pause ends (checked at every use)', async () => {
  // A fleet of its own: cold seed, a crash mid-transfer and a hang (requests settled by kills and
  // timeouts), several layers at once, so every path that changes what a download wants is taken.
  const fleet = parseScenario(TINY.replace(/^variants:[\s\S]*$/m, `variants:
  - {name: cold, mode: p2p, engine: thin}
  - {name: crash, mode: p2p-preheat, engine: thin, failure: {fraction: 0.2, atBoundFraction: 0.5, mode: crash}}
  - {name: hang, mode: p2p-preheat, engine: thin, failure: {fraction: 0.2, atBoundFraction: 0.5, mode: hang}}
  - {name: super-seeding, mode: p2p-preheat, engine: thin, superSeedHoldMs: 2000}
  - {name: siblings, mode: p2p-preheat, engine: thin, prefetchLayers: true, maxConcurrentUploads: 1, downloader: {maxInFlight: 4}}
`));
  checkThinWalk(true);
  let pausedParentsChecked = 0;
  try {
    for (const v of fleet.variants) {
      const r = await runVariant(fleet, v);
      assert.equal(r.completed, r.expected, `${v.name}: every survivor completes`);
    }
  } finally {
    pausedParentsChecked = checkThinWalk(false);
  }
  assert.ok(pausedParentsChecked > 0, 'some turn had a paused parent to check');
});

// Slow links: 8 requests in flight share a 6 Mbit/s downlink (94 KB/s each, 45 s per 4 MiB
// piece). Piece timeouts that held every request to the whole download's slowest rate (37 s)
// dropped every parent and sent the agents back to the registry.
const SLOW = `
name: slow-links
seed: 7
nodes: 12
image: {layers: [32MiB]}
topology: {dcs: 1, zonesPerDc: 1, racksPerZone: 2}
nic: 6Mbit
seeds: {perDc: 1, up: 24Mbit, down: 1Gbit}
registry: {egress: 1Gbit}
network: {rttMs: 0.1}
variants:
  - {name: p2p, mode: p2p}
  - {name: thin, mode: p2p, engine: thin}
  - {name: per-request-timeout, mode: p2p, engine: thin, downloader: {pieceTimeoutMinBps: 1048576}, seedUploadsPerChild: 0}
`;

test('slow links: pieces shared by 8 requests in flight do not time out, nobody falls back to the registry', async () => {
  const slow = parseScenario(SLOW);
  const byName = async (name: string) => runVariant(slow, slow.variants.find((v) => v.name === name)!);
  for (const name of ['p2p', 'thin']) {
    const r = await byName(name);
    assert.equal(r.completed, 12, name);
    assert.equal(r.fallbacks, 0, name);
    assert.equal(r.origin_ratio, 1, `${name}: one copy from the registry`);
  }
  // The old rule (each request held to 128 KiB/s) is what made agents fall back (with the seed of
  // then, which served a child any number of pieces at once, so a child's requests shared its 6 Mbit/s).
  const old = await byName('per-request-timeout');
  assert.ok(old.fallbacks > 0, `per-request timeout: ${old.fallbacks} fallbacks`);
});

test('agents weight their uploads by the child\'s progress unless a scenario says even (uploadWeightBase)', async () => {
  const tiny = parseScenario(TINY.replace('  - {name: thin,', '  - {name: even, mode: p2p-preheat, uploadWeightBase: 1}\n  - {name: thin,'));
  const byName = async (name: string) => runVariant(tiny, tiny.variants.find((v) => v.name === name)!);
  const [weighted, even] = [await byName('p2p-preheat'), await byName('even')];
  assert.equal(weighted.upload_weight_base, DEFAULT_UPLOAD_WEIGHT_BASE);
  assert.equal(even.upload_weight_base, 1);
  for (const r of [weighted, even]) assert.equal(r.completed, 20);
  // Same fleet, same seed: only the uplink sharing differs, and it must show in the timings.
  assert.notEqual(weighted.mean_s, even.mean_s);
  assert.throws(() => parseScenario(TINY.replace('nic: 1Gbit', 'nic: 1Gbit\nnetwork: {uploadWeightBase: 0}')), /uploadWeightBase must be a number in \[0.01, 1\]/);
});

test('peer servers keep a short line for upload slots unless a scenario says none (uploadQueue)', async () => {
  // Seeds with no per-child limit: its "busy" answers skip the line and would hide what it saves.
  const tiny = parseScenario(TINY.replace('  - {name: thin,', '  - {name: no-line, mode: p2p-preheat, uploadQueue: 0}\n  - {name: thin,').replace('nic: 1Gbit', 'nic: 1Gbit\nnetwork: {seedUploadsPerChild: 0}'));
  const byName = async (name: string) => runVariant(tiny, tiny.variants.find((v) => v.name === name)!);
  const [line, none] = [await byName('p2p-preheat'), await byName('no-line')];
  assert.equal(line.upload_queue, DEFAULT_UPLOAD_QUEUE);
  assert.equal(line.upload_queue_wait_ms, DEFAULT_UPLOAD_QUEUE_WAIT_MS);
  assert.equal(none.upload_queue, 0);
  for (const r of [line, none]) assert.equal(r.completed, 20);
  // Requests that would have been refused wait for a slot instead: fewer busy answers, same outcome.
  const busy = (r: VariantResult) => r.refusals.busy ?? 0;
  assert.ok(busy(none) > 0, 'the fleet is busy enough to refuse requests without a line');
  assert.ok(busy(line) < busy(none), `busy answers with a line ${busy(line)}, without ${busy(none)}`);
  assert.throws(() => parseScenario(TINY.replace('nic: 1Gbit', 'nic: 1Gbit\nnetwork: {uploadQueue: -1}')), /uploadQueue must be a number/);
});

test('seeds serve one piece at a time per child unless a scenario lifts it (seedUploadsPerChild: 0)', async () => {
  const tiny = parseScenario(TINY.replace('  - {name: thin,', '  - {name: unlimited, mode: p2p-preheat, seedUploadsPerChild: 0}\n  - {name: thin,'));
  const byName = async (name: string) => runVariant(tiny, tiny.variants.find((v) => v.name === name)!);
  const [limited, unlimited] = [await byName('p2p-preheat'), await byName('unlimited')];
  assert.equal(limited.seed_uploads_per_child, uploadsPerChildFor('seed'));
  assert.equal(unlimited.seed_uploads_per_child, 0);
  for (const r of [limited, unlimited]) assert.equal(r.completed, 20);
  assert.equal(limited.seed_most_uploads_per_child, 1, 'no child ever held two of a seed\'s slots');
  assert.ok(unlimited.seed_most_uploads_per_child! > 1, `without the limit one child held ${unlimited.seed_most_uploads_per_child} at once`);
  assert.notEqual(limited.mean_s, unlimited.mean_s);
  assert.throws(() => parseScenario(TINY.replace('nic: 1Gbit', 'nic: 1Gbit\nnetwork: {seedUploadsPerChild: -1}')), /seedUploadsPerChild must be a number/);
});

test('seeds super-seed when a scenario says (superSeedHoldMs), in both engines, and a fleet completes either way', async () => {
  // Whether it helps is measured on the large fleets (docs/sim/ramp-experiments.md); the thin
  // engine's copies of a view are checked at every pick by the walk test above.
  const tiny = parseScenario(TINY.replace('  - {name: thin,', `  - {name: viewed, mode: p2p-preheat, superSeedHoldMs: ${SUPER_SEED_HOLD_MS}}\n  - {name: thin-viewed, mode: p2p-preheat, engine: thin, superSeedHoldMs: ${SUPER_SEED_HOLD_MS}}\n  - {name: thin,`));
  const byName = async (name: string) => runVariant(tiny, tiny.variants.find((v) => v.name === name)!);
  for (const [viewed, shown] of [await Promise.all([byName('viewed'), byName('p2p-preheat')]), await Promise.all([byName('thin-viewed'), byName('thin')])]) {
    assert.equal(viewed!.super_seed_hold_ms, SUPER_SEED_HOLD_MS);
    assert.equal(shown!.super_seed_hold_ms, 0);
    for (const r of [viewed!, shown!]) {
      assert.equal(r.completed, 20, r.variant);
      assert.ok(r.seed_first_round_distinct! > 0 && r.seed_first_round_distinct! <= 1, `${r.variant}: ${r.seed_first_round_distinct}`);
    }
    assert.notEqual(viewed!.mean_s, shown!.mean_s, `${viewed!.engine}: the views changed nothing`);
  }
  assert.throws(() => parseScenario(TINY.replace('nic: 1Gbit', 'nic: 1Gbit\nnetwork: {superSeedHoldMs: -1}')), /superSeedHoldMs must be a number/);
});

test('links carry payloadShare of their rate as payload: a direct pull at half takes twice as long, the bound stays', async () => {
  const half = parseScenario(TINY.replace('nic: 1Gbit', 'nic: 1Gbit\nnetwork: {payloadShare: 0.5}'));
  const [full, slow] = [await run('direct'), await runVariant(half, half.variants.find((v) => v.name === 'direct')!)];
  assert.equal(full.payload_share, 1);
  assert.equal(slow.payload_share, 0.5);
  assert.equal(slow.bound_s, full.bound_s, 'the bound is on the nominal (wire) capacities');
  // Twice the transfer time; the fixed costs (round trips, announces) do not scale.
  assert.ok(slow.max_s / full.max_s > 1.9 && slow.max_s / full.max_s <= 2, `max ${slow.max_s} s against ${full.max_s} s`);
  assert.throws(() => parseScenario(TINY.replace('nic: 1Gbit', 'nic: 1Gbit\nnetwork: {payloadShare: 1.2}')), /payloadShare must be a number in \[0.5, 1\]/);
});

test('a variant can draw the fleet again with another seed; the run records which', async () => {
  const again = parseScenario(TINY.replace('  - {name: thin,', '  - {name: seed8, mode: p2p-preheat, seed: 8}\n  - {name: thin,'));
  const [base, other] = [await run('p2p-preheat'), await runVariant(again, again.variants.find((v) => v.name === 'seed8')!)];
  assert.equal(base.seed, 7);
  assert.equal(other.seed, 8);
  assert.equal(other.completed, 20);
  assert.notDeepEqual(other.cdf, base.cdf, 'another seed, another draw');
  assert.throws(() => parseScenario(TINY.replace('  - {name: thin,', '  - {name: bad, mode: p2p, seed: -1}\n  - {name: thin,')), /seed must be a number/);
});

test('seeds share their upload slots among the layers asked for when a scenario says so (seedTaskShareMs), first come otherwise', async () => {
  const { TaskSlotShares } = await import('../../../src/p2p/peer/task-shares.js');
  // Four slots everywhere, so two layers asked for at once give each layer two of the seed's. The
  // busy release off: in a 20-agent fleet, children that let a busy seed go seldom leave a layer
  // asking past its share while a slot is free, and this test is about the wiring, not the rule.
  const tiny = parseScenario(
    TINY.replace('nic: 1Gbit', 'nic: 1Gbit\nnetwork: {maxConcurrentUploads: 4}').replace('  - {name: thin,', '  - {name: shared, mode: p2p-preheat, seedTaskShareMs: 1000, downloader: {busyReleaseStreak: 0}}\n  - {name: thin,'),
  );
  const byName = async (name: string) => runVariant(tiny, tiny.variants.find((v) => v.name === name)!);
  const proto = TaskSlotShares.prototype;
  const { mayTake, took } = proto;
  const seen = { takes: 0, refused: 0 };
  proto.mayTake = function (this: InstanceType<typeof TaskSlotShares>, task: string, now: number) {
    const ok = mayTake.call(this, task, now);
    if (!ok) seen.refused++;
    return ok;
  };
  proto.took = function (this: InstanceType<typeof TaskSlotShares>, task: string) {
    seen.takes++;
    took.call(this, task);
  };
  try {
    const shared = await byName('shared');
    const sharedSeen = { ...seen };
    seen.takes = seen.refused = 0;
    const firstCome = await byName('p2p-preheat');
    assert.equal(shared.seed_task_share_ms, 1000);
    assert.equal(firstCome.seed_task_share_ms, 0);
    for (const r of [shared, firstCome]) assert.equal(r.completed, 20);
    assert.ok(sharedSeen.takes > 0, 'the seeds counted their uploads per layer');
    assert.ok(sharedSeen.refused > 0, 'a layer at its share was refused a free slot at least once');
    assert.deepEqual(seen, { takes: 0, refused: 0 }, 'first come (the default): no shares kept');
    assert.notEqual(shared.mean_s, firstCome.mean_s);
  } finally {
    proto.mayTake = mayTake;
    proto.took = took;
  }
  assert.throws(() => parseScenario(TINY.replace('nic: 1Gbit', 'nic: 1Gbit\nnetwork: {seedTaskShareMs: -5}')), /seedTaskShareMs must be a number/);
});

test("the scheduler replay's child gets the simulator's node options without its profiler's, values included", () => {
  assert.deepEqual(
    replayExecArgv(['--import', 'tsx', '--cpu-prof', '--cpu-prof-dir', '/tmp/p', '--cpu-prof-interval=500', '--heap-prof-interval', '2000', '--max-semi-space-size=64']),
    ['--import', 'tsx', '--max-semi-space-size=64'],
  );
  assert.deepEqual(replayExecArgv(['--cpu-prof-dir=/tmp/p', '--cpu-prof-name', 'x.cpuprofile', '--no-warnings']), ['--no-warnings']);
});
