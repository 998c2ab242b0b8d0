import { test } from 'node:test';
import assert from 'node:assert/strict';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import type { AnnounceRequest, Locality, PeerInfo, PieceManifest, SeedFetchRequest, TaskState } from '../../../src/p2p/protocol.js';
import { pieceCount } from '../../../src/p2p/protocol.js';
import { SchedulerCore, type SchedulerCoreOptions } from '../../../src/p2p/scheduler/core.js';
import { isSchedulerError } from '../../../src/p2p/scheduler/errors.js';
import { seededRandom } from '../../../src/p2p/scheduler/random.js';

const D1: Digest = digestOf('blob-1');

const agent = (id: string, labels: Locality = {}, extra: Partial<PeerInfo> = {}): PeerInfo => ({ id, url: `http://127.0.0.1:1/${id}`, role: 'agent', labels, ...extra });
const seed = (id: string, labels: Locality = {}): PeerInfo => ({ id, url: `http://127.0.0.1:2/${id}`, role: 'seed', labels });

function ann(peer: PeerInfo, o: { digest?: Digest; state?: TaskState; completed?: number; want?: number; repo?: string | null; bad?: AnnounceRequest['badPeers'] } = {}): AnnounceRequest {
  return {
    peer,
    task: { digest: o.digest ?? D1, size: 40, ...(o.repo === null ? {} : { repo: o.repo ?? 'team/app' }) },
    state: o.state ?? 'downloading',
    completedPieces: o.completed ?? 0,
    wantParents: o.want ?? 4,
    ...(o.bad ? { badPeers: o.bad } : {}),
  };
}

function manifest(digest: Digest = D1, pieces = 10, tag = ''): PieceManifest {
  const size = pieces * 4;
  return { digest, size, pieceSize: 4, pieceDigests: Array.from({ length: pieceCount(size, 4) }, (_, i) => digestOf(`${digest}:${i}${tag}`)) };
}

type Fetch = { seed: string; req: SeedFetchRequest };

/** A core with one live seed that already published D1, plus a log of seed fetch requests. */
function setup(opts: Partial<SchedulerCoreOptions> = {}, seeds: PeerInfo[] = [seed('s1')], publish = true) {
  const fetches: Fetch[] = [];
  const core = new SchedulerCore({ random: seededRandom(7), intervalJitter: 0, minPeerTtlMs: 0, requestSeedFetch: (s, req) => fetches.push({ seed: s.id, req }), ...opts });
  for (const s of seeds) core.heartbeat({ peer: s }, 0);
  if (publish && seeds[0]) core.publishPieces(manifest(), seeds[0].id, 0);
  return { core, fetches };
}

const ids = (ps: PeerInfo[]) => ps.map((p) => p.id);

test('locality: same rack beats same zone beats same dc beats elsewhere', () => {
  for (let trial = 0; trial < 20; trial++) {
    const { core } = setup({ random: seededRandom(trial) });
    const me = { dc: 'd1', zone: 'z1', rack: 'r1' };
    core.announce(ann(agent('far', { dc: 'd2', zone: 'z1', rack: 'r1' }), { state: 'done' }), 1);
    core.announce(ann(agent('dc', { dc: 'd1', zone: 'z2', rack: 'r1' }), { state: 'done' }), 1);
    core.announce(ann(agent('zone', { dc: 'd1', zone: 'z1', rack: 'r2' }), { state: 'done' }), 1);
    core.announce(ann(agent('rack', me), { state: 'done' }), 1);
    assert.deepEqual(ids(core.announce(ann(agent(`me${trial}`, me), { want: 3 }), 2).parents), ['rack', 'zone', 'dc']);
  }
});

test('load spreading: no parent ever has more children than its cap, and everyone gets parents', () => {
  // wantParents is "how many more": the downloader asks for wantParents minus the parents it still has.
  const { core } = setup({ maxChildren: 5, seedMaxChildren: 6 });
  const n = 300;
  for (let i = 0; i < n; i++) {
    const r = core.announce(ann(agent(`a${i}`, { rack: `r${i % 7}` }), { want: 3 }), 10 + i);
    assert.ok(r.parents.length >= 1, `a${i} got no parent`);
    assert.ok(r.parents.length <= 3);
  }
  // Progress reports (wantParents 0) keep the assignments; asking for more adds, within caps.
  for (let i = 0; i < n; i++) assert.deepEqual(core.announce(ann(agent(`a${i}`, { rack: `r${i % 7}` }), { want: 0, completed: 1 }), 400 + i).parents, []);
  assert.ok(core.inspect(D1).filter((m) => m.parents.length === 3).length > n * 0.9, 'almost everyone has all the parents it asked for');
  for (let i = 0; i < n; i += 3) core.announce(ann(agent(`a${i}`, { rack: `r${i % 7}` }), { want: 2, completed: 2 }), 800 + i);
  const view = core.inspect(D1);
  const count = new Map<string, number>();
  for (const m of view) for (const p of m.parents) count.set(p, (count.get(p) ?? 0) + 1);
  for (const m of view) {
    assert.equal(m.children, count.get(m.id) ?? 0, `child count of ${m.id} matches assignments`);
    assert.ok(m.children <= m.cap, `${m.id} has ${m.children} children, cap ${m.cap}`);
  }
  assert.ok(Math.max(...view.map((m) => m.parents.length)) <= 5);
  assert.equal(view.find((m) => m.id === 's1')!.cap, 6);
});

test('uploadBps lowers the child cap', () => {
  const { core } = setup({ bytesPerSecPerChild: 100, minChildren: 1 });
  core.announce(ann(agent('slow', {}, { uploadBps: 250 }), { state: 'done' }), 1);
  assert.equal(core.inspect(D1).find((m) => m.id === 'slow')!.cap, 2);
});

test('a slow-NIC parent still gets minChildren children (the cap never falls to 1)', () => {
  const { core } = setup({ maxChildren: 20 });
  // 20 Mbit/s: uploadBps / 16 MiB/s is 0; the floor (4 by default) applies.
  core.announce(ann(agent('slow', {}, { uploadBps: 2.5e6 }), { state: 'done' }), 1);
  core.announce(ann(agent('fast', {}, { uploadBps: 1.25e9 }), { state: 'done' }), 1);
  core.announce(ann(agent('unknown'), { state: 'done' }), 1);
  const cap = (id: string) => core.inspect(D1).find((m) => m.id === id)!.cap;
  assert.equal(cap('slow'), 4);
  assert.equal(cap('fast'), 20, '1 Gbit/s / 16 MiB/s = 74, clamped to maxChildren');
  assert.equal(cap('unknown'), 20);
  for (let i = 0; i < 10; i++) core.announce(ann(agent(`c${i}`), { want: 3 }), 2);
  assert.equal(core.inspect(D1).find((m) => m.id === 'slow')!.children, 4, 'its four slots are used');
});

test('a "slow" report excludes the parent for the reporter only and never cools it down for everyone', () => {
  const { core } = setup({ reportThreshold: 2 });
  core.announce(ann(agent('busy'), { state: 'done' }), 1);
  for (let i = 0; i < 5; i++) {
    const r = core.announce(ann(agent(`r${i}`), { want: 2 }), 2);
    assert.ok(ids(r.parents).includes('busy'));
    const again = core.announce(ann(agent(`r${i}`), { want: 1, bad: [{ peerId: 'busy', reason: 'slow' }] }), 3);
    assert.ok(!ids(again.parents).includes('busy'), 'not handed back to its reporter');
  }
  assert.equal(core.stats().cooldowns, 0);
  assert.ok(ids(core.announce(ann(agent('newcomer'), { want: 2 }), 4).parents).includes('busy'), 'still a parent for others');
  // Two "unreachable" reports do cool it down (the rule for dead parents is unchanged).
  core.announce(ann(agent('x1'), { want: 0, bad: [{ peerId: 'busy', reason: 'unreachable' }] }), 5);
  core.announce(ann(agent('x2'), { want: 0, bad: [{ peerId: 'busy', reason: 'unreachable' }] }), 5);
  assert.equal(core.stats().cooldowns, 1);
});

test('released parents free their slot, are not handed back to that child for a while, and count against nobody', () => {
  const { core } = setup({ maxChildren: 1, releaseExcludeMs: 1000 });
  core.announce(ann(agent('p1'), { state: 'done' }), 1);
  core.announce(ann(agent('p2'), { state: 'done' }), 1);
  const first = ids(core.announce(ann(agent('kid'), { want: 1 }), 2).parents);
  assert.equal(first.length, 1);
  const [held] = first;
  const other = held === 'p1' ? 'p2' : 'p1';
  const swap = core.announce({ ...ann(agent('kid'), { want: 1 }), releasedParents: [held!] }, 3);
  assert.deepEqual(ids(swap.parents), [other], 'replaced in the same announce by someone else');
  assert.equal(core.inspect(D1).find((m) => m.id === held)!.children, 0, 'its slot is free');
  assert.ok(ids(core.announce(ann(agent('kid2'), { want: 1 }), 4).parents).includes(held!), 'another child gets it at once');
  const st = core.stats();
  assert.equal(st.badPeerReports, 0);
  assert.equal(st.cooldowns, 0);
  // After releaseExcludeMs the releasing child may get it back.
  core.announce({ ...ann(agent('kid2'), { want: 0 }), releasedParents: [held!] }, 5);
  core.announce({ ...ann(agent('kid'), { want: 0 }), releasedParents: [other] }, 6);
  const mid = ids(core.announce(ann(agent('kid'), { want: 3 }), 500).parents);
  assert.ok(!mid.includes(held!) && !mid.includes(other), `both still excluded at 500 ms (got ${mid.join(',')})`);
  assert.ok(ids(core.announce(ann(agent('kid'), { want: 3 }), 1100).parents).includes(held!), 'eligible again after 1 s');
});

test('progress: a parent ahead of the child beats a nearer one with nothing yet', () => {
  for (let trial = 0; trial < 10; trial++) {
    const { core } = setup({ random: seededRandom(300 + trial), seedMaxChildren: 1 });
    const me = { dc: 'd1', zone: 'z1', rack: 'r1' };
    core.announce(ann(agent('filler', me), { want: 1 }), 1); // takes the seed's only slot
    core.announce(ann(agent('near-empty', me), { completed: 0, want: 0 }), 1);
    core.announce(ann(agent('up-stream', me), { completed: 0, want: 1 }), 1); // has a parent, no piece
    core.announce(ann(agent('far-ahead', { dc: 'd1', zone: 'z2', rack: 'r9' }), { completed: 8 }), 1);
    const r = core.announce(ann(agent(`me${trial}`, me), { want: 1 }), 2);
    assert.deepEqual(ids(r.parents), ['far-ahead'], 'same dc, 80 % ahead, beats same-rack peers with no piece');
  }
});

test('a peer reported for a corrupt piece is blocklisted for everyone in the task', () => {
  const { core } = setup();
  core.announce(ann(agent('liar'), { state: 'done' }), 1);
  const r1 = core.announce(ann(agent('a')), 2);
  assert.ok(ids(r1.parents).includes('liar'));
  const r2 = core.announce(ann(agent('a'), { bad: [{ peerId: 'liar', reason: 'corrupt-piece' }] }), 3);
  assert.ok(!ids(r2.parents).includes('liar'), 'replaced in the response');
  for (let i = 0; i < 20; i++) assert.ok(!ids(core.announce(ann(agent(`b${i}`)), 4).parents).includes('liar'));
  const st = core.stats();
  assert.equal(st.blocklistings, 1);
  assert.equal(st.blocklistedPeers, 1);
  assert.deepEqual(core.taskStatus(D1)!.blocklisted, ['liar']);
});

test('unreachable: excluded for the reporter at once, for everyone after two reporters, back after the cool-down', () => {
  const { core } = setup({ cooldownMs: 30_000, reporterExcludeMs: 60_000 });
  const keepAlive = (t: number) => {
    core.heartbeat({ peer: seed('s1') }, t);
    core.announce(ann(agent('x'), { state: 'done' }), t);
  };
  keepAlive(1);
  assert.ok(ids(core.announce(ann(agent('a')), 2).parents).includes('x'));
  assert.ok(!ids(core.announce(ann(agent('a'), { bad: [{ peerId: 'x', reason: 'unreachable' }] }), 3).parents).includes('x'));
  assert.ok(ids(core.announce(ann(agent('b')), 4).parents).includes('x'), 'one report does not exclude it for others');
  core.announce(ann(agent('b'), { bad: [{ peerId: 'x', reason: 'refused' }] }), 5);
  assert.equal(core.stats().cooldowns, 1);
  assert.ok(!ids(core.announce(ann(agent('c')), 6).parents).includes('x'), 'two reporters: cool-down for everyone');
  keepAlive(4000);
  keepAlive(8000);
  keepAlive(12_000);
  keepAlive(16_000);
  keepAlive(20_000);
  keepAlive(24_000);
  keepAlive(28_000);
  keepAlive(31_000);
  assert.ok(ids(core.announce(ann(agent('d')), 31_001).parents).includes('x'), 'after the cool-down it is a parent again');
  assert.ok(!ids(core.announce(ann(agent('a'), { want: 8 }), 31_002).parents).includes('x'), 'still excluded for the first reporter');
});

test('a seed fetch is requested once, retried on another seed after a failure and after the seed expires', () => {
  const { core, fetches } = setup({ announceIntervalMs: 1000 }, [seed('s1'), seed('s2'), seed('s3')], false);
  for (let i = 0; i < 10; i++) {
    const r = core.announce(ann(agent(`a${i}`)), 10);
    assert.equal(r.backToSource, false, 'a seed is on it: no origin traffic from agents');
    assert.deepEqual(r.parents, []);
  }
  assert.equal(fetches.length, 1);
  assert.deepEqual(fetches[0]!.req, { digest: D1, repo: 'team/app' });
  const first = fetches[0]!.seed;
  core.seedFetchFailed(D1, first, 20);
  assert.equal(fetches.length, 2, 'retried at once');
  const second = fetches[1]!.seed;
  assert.notEqual(second, first);
  assert.equal(core.taskStatus(D1)!.seedFetch?.seed, second);
  // The second seed goes silent; the others keep heartbeating and agents keep announcing.
  for (const t of [1000, 2000, 3000, 3500]) {
    for (const s of ['s1', 's2', 's3']) if (s !== second) core.heartbeat({ peer: seed(s) }, t);
    core.announce(ann(agent('a0')), t);
  }
  core.expire(3500);
  assert.equal(fetches.length, 3);
  const third = fetches[2]!.seed;
  assert.ok(third !== second && third !== first, `third try goes to the remaining seed (got ${third})`);
  core.publishPieces(manifest(), third, 3600);
  assert.equal(core.taskStatus(D1)!.seedFetch, undefined);
  const r = core.announce(ann(agent('a1')), 3700);
  assert.deepEqual(ids(r.parents), [third]);
  assert.equal(r.pieces?.pieceDigests.length, 10);
  const st = core.stats();
  assert.equal(st.seedFetchRequests, 3);
  assert.equal(st.seedFetchFailures, 2);
});

test('a seed fetch that never publishes is retried after seedFetchTimeoutMs', () => {
  const { core, fetches } = setup({ seedFetchTimeoutMs: 5000, announceIntervalMs: 10_000 }, [seed('s1'), seed('s2')], false);
  core.announce(ann(agent('a')), 0);
  core.announce(ann(agent('a')), 4000);
  assert.equal(fetches.length, 1);
  core.announce(ann(agent('a')), 5001);
  assert.equal(fetches.length, 2);
  assert.notEqual(fetches[1]!.seed, fetches[0]!.seed);
});

test('seed choice: same zone/dc as the requester, digests spread over seeds by hash', () => {
  const seeds = [seed('east-1', { dc: 'east' }), seed('east-2', { dc: 'east' }), seed('west-1', { dc: 'west' }), seed('west-2', { dc: 'west' })];
  const { core, fetches } = setup({}, seeds, false);
  for (let i = 0; i < 40; i++) core.announce(ann(agent(`w${i}`, { dc: 'west' }), { digest: digestOf(`layer-${i}`) }), 1);
  assert.equal(fetches.length, 40);
  const used = new Map<string, number>();
  for (const f of fetches) used.set(f.seed, (used.get(f.seed) ?? 0) + 1);
  assert.deepEqual([...used.keys()].sort(), ['west-1', 'west-2']);
  assert.ok(Math.min(...used.values()) >= 8, `spread: ${JSON.stringify([...used])}`);
  // Same digest from another requester in the same dc: same seed (consistent), and not asked again.
  const again = new SchedulerCore({ random: seededRandom(1) });
  const chosen: string[] = [];
  again.setSeedFetchHandler((s) => chosen.push(s.id));
  for (const s of [...seeds].reverse()) again.heartbeat({ peer: s }, 0);
  again.announce(ann(agent('x', { dc: 'west' }), { digest: digestOf('layer-3') }), 1);
  assert.equal(chosen[0], fetches[3]!.seed, 'rendezvous hashing does not depend on registration order');
});

test('back to source: only without a live seed, at most K per task at a time', () => {
  const { core, fetches } = setup({ backToSourceLimit: 3 }, [], false);
  const granted = [];
  for (let i = 0; i < 10; i++) if (core.announce(ann(agent(`a${i}`)), 1).backToSource) granted.push(`a${i}`);
  assert.deepEqual(granted, ['a0', 'a1', 'a2']);
  assert.equal(fetches.length, 0);
  assert.equal(core.announce(ann(agent('a1')), 2).backToSource, true, 'a grant holder keeps its grant');
  core.announce(ann(agent('a1'), { state: 'done' }), 3);
  assert.equal(core.announce(ann(agent('a5')), 4).backToSource, true, 'a finished grant frees a slot');
  assert.equal(core.announce(ann(agent('a6')), 4).backToSource, false);
  assert.equal(core.taskStatus(D1)!.backToSource, 3);
  assert.equal(core.stats().backToSourceGrants, 4);
  // A seed appears: new peers wait for it instead of going to the origin.
  core.heartbeat({ peer: seed('s1') }, 5);
  assert.equal(core.announce(ann(agent('a7')), 6).backToSource, false);
  assert.equal(fetches.length, 1);
  // All seeds failed: back to source again (bounded).
  core.seedFetchFailed(D1, 's1', 7);
  core.announce(ann(agent('a0'), { state: 'done' }), 8);
  assert.equal(core.announce(ann(agent('a8')), 9).backToSource, true);
  assert.equal(core.announce(ann(agent('a9')), 9).backToSource, false);
});

test('without a repository a seed cannot fetch, so the task goes back to source', () => {
  const { core, fetches } = setup({}, [seed('s1')], false);
  assert.equal(core.announce(ann(agent('a'), { repo: null }), 1).backToSource, true);
  assert.equal(fetches.length, 0);
});

test('done peers are preferred over downloading ones; agents over the seed once they can serve', () => {
  for (let trial = 0; trial < 20; trial++) {
    const { core } = setup({ random: seededRandom(100 + trial) });
    for (let i = 0; i < 5; i++) core.announce(ann(agent(`dl${i}`), { completed: 3 }), 1);
    core.announce(ann(agent('done'), { state: 'done' }), 2);
    const r = core.announce(ann(agent(`me${trial}`), { want: 1 }), 3);
    assert.deepEqual(ids(r.parents), ['done']);
  }
  const { core } = setup();
  assert.deepEqual(ids(core.announce(ann(agent('first')), 1).parents), ['s1'], 'the seed serves the first peer');
  const second = ids(core.announce(ann(agent('second'), { want: 2 }), 2).parents);
  // 'first' holds nothing yet: the seed, which holds everything, ranks before it.
  assert.deepEqual(second, ['s1', 'first'], 'an agent with no piece yet ranks after the seed but is still handed out');
});

test('expiry drops silent peers, their assignments and idle tasks', () => {
  const { core } = setup({ announceIntervalMs: 1000, taskIdleTtlMs: 10_000 });
  core.announce(ann(agent('gone'), { state: 'done' }), 0);
  core.announce(ann(agent('stays')), 0);
  assert.equal(core.taskStatus(D1)!.peers, 2);
  for (const t of [1000, 2000, 2900]) {
    core.announce(ann(agent('stays')), t);
    core.heartbeat({ peer: seed('s1') }, t);
  }
  core.expire(3001);
  assert.equal(core.taskStatus(D1)!.peers, 1);
  assert.equal(core.taskStatus(D1)!.done, 0);
  assert.ok(!ids(core.announce(ann(agent('new')), 3002).parents).includes('gone'));
  assert.equal(core.stats().peersExpired, 1);
  core.expire(20_000);
  assert.equal(core.taskStatus(D1), undefined, 'everyone silent: the task is forgotten');
  assert.equal(core.stats().activePeers, 0);
  assert.equal(core.stats().activeMembers, 0);
});

test('left peers are removed, failed peers are never parents', () => {
  const { core } = setup();
  core.announce(ann(agent('quitter'), { state: 'done' }), 1);
  core.announce(ann(agent('broken'), { completed: 5 }), 1);
  core.announce(ann(agent('broken'), { state: 'failed', completed: 5 }), 2);
  core.announce(ann(agent('quitter'), { state: 'left' }), 2);
  assert.equal(core.taskStatus(D1)!.peers, 1);
  for (let i = 0; i < 10; i++) {
    const got = ids(core.announce(ann(agent(`x${i}`), { want: 8 }), 3).parents);
    assert.ok(!got.includes('quitter') && !got.includes('broken'), got.join());
  }
});

test('manifests: only live registered seeds publish; the first valid one wins', () => {
  const { core } = setup({}, [seed('s1'), seed('s2')], false);
  core.announce(ann(agent('a')), 1);
  const code = (fn: () => void) => {
    try {
      fn();
    } catch (e) {
      if (isSchedulerError(e)) return e.code;
      throw e;
    }
    return 'ok';
  };
  assert.equal(code(() => core.publishPieces(manifest(), 'a', 2)), 'NOT_A_SEED');
  assert.equal(code(() => core.publishPieces(manifest(), 'nobody', 2)), 'NOT_A_SEED');
  assert.equal(code(() => core.publishPieces({ ...manifest(), pieceDigests: manifest().pieceDigests.slice(1) }, 's1', 2)), 'MANIFEST_INVALID');
  assert.equal(code(() => core.publishPieces(manifest(), 's1', 2)), 'ok');
  assert.equal(code(() => core.publishPieces(manifest(), 's2', 3)), 'ok', 'the same manifest again is fine');
  assert.equal(code(() => core.publishPieces(manifest(D1, 10, 'evil'), 's2', 3)), 'MANIFEST_CONFLICT');
  assert.equal(core.taskStatus(D1)!.pieces!.pieceDigests[0], manifest().pieceDigests[0]);
  assert.deepEqual(core.taskStatus(D1)!.seeds.sort(), ['s1', 's2']);
  assert.equal(core.stats().manifestConflicts, 1);
  assert.equal(core.stats().manifestsPublished, 1);
});

test('seed heartbeats carry holdings: a holding seed is asked to re-publish after a scheduler restart', () => {
  const { core, fetches } = setup({}, [], false);
  core.heartbeat({ peer: seed('s1'), completeTasks: [D1] }, 0);
  core.heartbeat({ peer: seed('s2') }, 0);
  core.announce(ann(agent('a')), 1);
  assert.deepEqual(fetches.map((f) => f.seed), ['s1']);
  assert.deepEqual(core.progress(D1), { seedsDone: 1, agentsDone: 0 });
  core.heartbeat({ peer: seed('s1'), completeTasks: [] }, 2);
  assert.deepEqual(core.progress(D1), { seedsDone: 0, agentsDone: 0 });
  assert.deepEqual(core.seeds().map((s) => s.id).sort(), ['s1', 's2']);
  assert.deepEqual(core.agents().map((s) => s.id), ['a']);
});

test('the announce interval grows with the number of announcing peers', () => {
  const { core } = setup({ announceIntervalMs: 1000, announceBudgetPerSec: 100, maxAnnounceIntervalMs: 5000 });
  assert.equal(core.announce(ann(agent('a0')), 1).announceIntervalMs, 1000);
  for (let i = 1; i < 300; i++) core.announce(ann(agent(`a${i}`)), 1);
  // 300 members at 100/s: 3 s at least (the announce calendar may push it later, see announce-calendar.test.ts).
  const second = core.announce(ann(agent('a0')), 2).announceIntervalMs;
  assert.ok(second >= 3000 && second <= 5000, `${second}`);
  assert.equal(core.stats().announceIntervalMs, 3000);
  for (let i = 300; i < 1000; i++) core.announce(ann(agent(`a${i}`)), 1);
  assert.equal(core.announce(ann(agent('a0')), 3).announceIntervalMs, 5000, 'capped');
  assert.equal(core.stats().announceIntervalMs, 5000);
});

test('the seed-fetch effect runs after the call, so it may call back into the core', () => {
  let core!: SchedulerCore;
  core = new SchedulerCore({
    random: seededRandom(3),
    requestSeedFetch: (s, req) => core.publishPieces(manifest(req.digest), s.id, 1),
  });
  core.heartbeat({ peer: seed('s1') }, 0);
  const r = core.announce(ann(agent('a')), 1);
  assert.equal(r.pieces, undefined, 'this response was built before the seed published');
  assert.deepEqual(ids(core.announce(ann(agent('a')), 2).parents), ['s1']);
});

test('moving racks re-files a peer; agent heartbeats with completeTasks make it a done parent', () => {
  const { core } = setup();
  core.heartbeat({ peer: agent('holder', { rack: 'r1' }), completeTasks: [D1] }, 1);
  assert.equal(core.taskStatus(D1)!.done, 1);
  core.announce(ann(agent('other', { rack: 'r2' }), { state: 'done' }), 1);
  assert.deepEqual(ids(core.announce(ann(agent('me', { rack: 'r2' }), { want: 1 }), 2).parents), ['other']);
  // "holder" moves to r2 and "other" to r3: the next newcomer in r2 gets "holder".
  core.heartbeat({ peer: agent('holder', { rack: 'r2' }) }, 3);
  core.heartbeat({ peer: agent('other', { rack: 'r3' }) }, 3);
  assert.deepEqual(ids(core.announce(ann(agent('me2', { rack: 'r2' }), { want: 1 }), 4).parents), ['holder']);
  core.heartbeat({ peer: agent('holder', { rack: 'r2' }), completeTasks: [] }, 5);
  assert.equal(core.taskStatus(D1)!.done, 1, 'a holding dropped from the list leaves the swarm');
});

for (const fuzzSeed of [99, 123, 2024]) test(`randomized operations keep child counts equal to assignments and within caps (seed ${fuzzSeed})`, () => {
  const random = seededRandom(fuzzSeed);
  const { core } = setup({ random, maxChildren: 3, seedMaxChildren: 4, announceIntervalMs: 1000 }, [seed('s1'), seed('s2')]);
  const states: TaskState[] = ['started', 'downloading', 'downloading', 'downloading', 'done', 'failed', 'left'];
  const reasons = ['corrupt-piece', 'unreachable', 'slow', 'refused'] as const;
  const pick = <T,>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  let now = 0;
  for (let step = 0; step < 4000; step++) {
    now += Math.floor(random() * 40);
    const id = `a${Math.floor(random() * 60)}`;
    const labels = { zone: pick(['z1', 'z2']), rack: pick(['r1', 'r2', 'r3']) };
    const op = random();
    if (op < 0.8) {
      const bad = random() < 0.05 ? [{ peerId: random() < 0.9 ? `a${Math.floor(random() * 60)}` : 's2', reason: pick(reasons) }] : undefined;
      core.announce(ann(agent(id, labels), { state: pick(states), completed: Math.floor(random() * 10), want: Math.floor(random() * 5), ...(bad ? { bad } : {}) }), now);
    } else if (op < 0.9) {
      core.heartbeat({ peer: seed(pick(['s1', 's2'])) }, now);
    } else if (op < 0.95) {
      core.expire(now);
    } else {
      core.heartbeat({ peer: agent(id, labels), ...(random() < 0.5 ? { completeTasks: [D1] } : {}) }, now);
    }
    const view = core.inspect(D1);
    const count = new Map<string, number>();
    for (const m of view) for (const p of m.parents) count.set(p, (count.get(p) ?? 0) + 1);
    for (const m of view) {
      assert.equal(m.children, count.get(m.id) ?? 0, `step ${step}: children of ${m.id}`);
      assert.ok(m.children <= m.cap, `step ${step}: ${m.id} over its cap`);
    }
    const st = core.taskStatus(D1);
    if (st) {
      assert.equal(st.peers, view.filter((m) => m.role === 'agent').length, `step ${step}: agent count`);
      assert.equal(st.done, view.filter((m) => m.role === 'agent' && m.state === 'done').length, `step ${step}: done count`);
      assert.ok(st.backToSource <= 3);
    }
  }
  assert.equal(core.stats().activeMembers, core.inspect(D1).filter((m) => m.role === 'agent').length);
});

test('wantParents asks for more parents: new ones only, never one the peer already has', () => {
  const { core } = setup();
  for (let i = 0; i < 10; i++) core.announce(ann(agent(`d${i}`), { state: 'done' }), 1);
  const first = ids(core.announce(ann(agent('me'), { want: 3 }), 2).parents);
  assert.equal(first.length, 3);
  const more = ids(core.announce(ann(agent('me'), { want: 2, bad: [{ peerId: first[0]!, reason: 'unreachable' }] }), 3).parents);
  assert.equal(more.length, 2);
  assert.ok(more.every((id) => !first.includes(id)), `${more} overlaps ${first}`);
  const mine = core.inspect(D1).find((m) => m.id === 'me')!;
  assert.deepEqual(mine.parents.sort(), [...first.slice(1), ...more].sort(), 'the reported parent was released, the rest kept');
  for (let i = 0; i < 5; i++) core.announce(ann(agent('me'), { want: 4 }), 4 + i);
  assert.ok(core.inspect(D1).find((m) => m.id === 'me')!.parents.length <= core.opts.maxParents + 2, 'recorded parents are bounded');
});

test('done agents that only heartbeat (every 5 s) stay parents; their caches do not create tasks', () => {
  const core = new SchedulerCore({ random: seededRandom(5), intervalJitter: 0 });
  core.heartbeat({ peer: seed('s1') }, 0);
  core.publishPieces(manifest(), 's1', 0);
  core.announce(ann(agent('h'), { state: 'done' }), 0);
  const other = digestOf('cached-elsewhere');
  for (let t = 5000; t <= 30_000; t += 5000) {
    core.heartbeat({ peer: agent('h'), completeTasks: [D1, other] }, t);
    core.heartbeat({ peer: seed('s1') }, t);
    core.expire(t + 1);
  }
  assert.equal(core.taskStatus(D1)!.done, 1);
  assert.equal(core.taskStatus(other), undefined);
  assert.ok(ids(core.announce(ann(agent('n')), 30_002).parents).includes('h'));
  core.expire(30_000 + 16_000);
  assert.equal(core.taskStatus(D1)!.done, 0, 'silent for longer than minPeerTtlMs: gone');
});

test('replacement requests examine a sample sized to what they ask for; a full request examines sampleSize', async () => {
  const { sampleSizeFor } = await import('../../../src/p2p/scheduler/swarm.js');
  assert.equal(sampleSizeFor(10, 40), 40);
  assert.equal(sampleSizeFor(20, 40), 40);
  assert.equal(sampleSizeFor(6, 40), 24);
  assert.equal(sampleSizeFor(1, 40), 16);
  assert.equal(sampleSizeFor(1, 5), 5);
});

test('a seed its children report unreachable stays a source while its heartbeats say it is uploading; otherwise agents get the registry', () => {
  for (const uploading of [0, 4]) {
    const { core } = setup({ reportThreshold: 2, backToSourceLimit: 3 });
    core.heartbeat({ peer: seed('s1'), uploading }, 1);
    assert.ok(ids(core.announce(ann(agent('a0')), 1).parents).includes('s1'));
    core.announce(ann(agent('x1'), { want: 0, bad: [{ peerId: 's1', reason: 'unreachable' }] }), 2);
    core.announce(ann(agent('x2'), { want: 0, bad: [{ peerId: 's1', reason: 'unreachable' }] }), 2);
    assert.equal(core.stats().cooldowns, 1, 'two reports cool the seed down for everyone');
    const r = core.announce(ann(agent('late')), 3);
    assert.ok(!ids(r.parents).includes('s1'), 'a cooled-down seed is not handed out either way');
    if (uploading) assert.equal(r.backToSource, false, 'the seed serves others: congestion, not a cut-off seed');
    else assert.equal(r.backToSource, true, 'an idle seed nobody can reach: the registry feeds the swarm');
  }
});

test('seeds of the child\'s own data centre only, while one of them holds the blob and is alive', () => {
  const s1 = seed('s-d1', { dc: 'd1' });
  const s2 = seed('s-d2', { dc: 'd2' });
  const { core } = setup({ seedMaxChildren: 1, announceIntervalMs: 1000 }, [s1, s2]);
  core.heartbeat({ peer: s1, completeTasks: [D1] }, 0);
  core.heartbeat({ peer: s2, completeTasks: [D1] }, 0);
  assert.deepEqual(ids(core.announce(ann(agent('a1', { dc: 'd1' }), { want: 4 }), 1).parents), ['s-d1']);
  // Its own seed is full: another DC's seed, which would rank first, is not handed out.
  assert.deepEqual(ids(core.announce(ann(agent('a2', { dc: 'd1' }), { want: 4 }), 2).parents), ['a1']);
  // A DC with no seed of its own gets one from elsewhere.
  assert.deepEqual(ids(core.announce(ann(agent('c1', { dc: 'd3' }), { want: 4 }), 3).parents).sort(), ['a1', 'a2', 's-d2']);
  // Once d1's seed is gone, d1's children may have d2's (its child slot freed by c1 leaving).
  core.announce(ann(agent('c1', { dc: 'd3' }), { state: 'left' }), 4);
  for (const t of [1000, 2000, 3000, 4000]) core.heartbeat({ peer: s2, completeTasks: [D1] }, t);
  assert.ok(ids(core.announce(ann(agent('a3', { dc: 'd1' }), { want: 4 }), 4500).parents).includes('s-d2'));
});
