// 10,000 peers pulling one blob through the real SchedulerCore in virtual time: the control
// plane must stay O(peers) (a few announces each), every peer must get parents, and no parent
// may ever exceed its child cap. Timing is printed, not asserted (shared CI machines).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import type { PeerInfo, PieceManifest } from '../../../src/p2p/protocol.js';
import { SchedulerCore } from '../../../src/p2p/scheduler/core.js';
import { seededRandom } from '../../../src/p2p/scheduler/random.js';

const DIGEST: Digest = digestOf('big-layer');
const PIECES = 50;
const MANIFEST: PieceManifest = { digest: DIGEST, size: PIECES * 1024, pieceSize: 1024, pieceDigests: Array.from({ length: PIECES }, (_, i) => digestOf(`p${i}`)) };

/** Binary min-heap of [time, seq, action]; seq keeps same-time events in insertion order. */
class Events {
  private h: Array<[number, number, () => void]> = [];
  private seq = 0;
  get size() {
    return this.h.length;
  }
  push(t: number, fn: () => void) {
    const h = this.h;
    h.push([t, this.seq++, fn]);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (this.less(h[i]!, h[p]!)) {
        [h[i], h[p]] = [h[p]!, h[i]!];
        i = p;
      } else break;
    }
  }
  pop(): [number, () => void] {
    const h = this.h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return [top[0], top[2]];
  }
  private less(a: [number, number, unknown], b: [number, number, unknown]) {
    return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  }
}

test('10,000 peers, one task, 2 % crash mid-way: O(peers) announces, everyone gets parents, caps hold', () => {
  const N = 10_000;
  const CRASH_SHARE = 0.02;
  const random = seededRandom(42);
  const events = new Events();
  let seedFetches = 0;
  const seedInfo: PeerInfo = { id: 'seed-0', url: 'http://127.0.0.1:9/seed', role: 'seed', labels: { dc: 'd0', zone: 'z0', rack: 'seeds' } };
  const core = new SchedulerCore({
    random,
    requestSeedFetch: (s) => {
      seedFetches++;
      // The seed takes 1 s (virtual) to fetch and verify the blob.
      events.push(now + 1000, () => core.publishPieces(MANIFEST, s.id, now));
    },
  });
  const { maxChildren, seedMaxChildren } = core.opts;
  let now = 0;

  interface Sim {
    info: PeerInfo;
    completed: number;
    last: number;
    parents: string[];
    everParented: boolean;
    emptyAfterManifest: number;
    finished: boolean;
    crashed: boolean;
  }
  const peers: Sim[] = [];
  const crashedIds = new Set<string>();
  const completedOf = new Map<string, number>([[seedInfo.id, PIECES]]);
  const load = new Map<string, number>();
  let maxLoadSeen = 0;
  let done = 0;
  let announces = 0;
  let coreNs = 0n;
  let manifestAt = Infinity;

  const setParents = (p: Sim, next: string[]) => {
    for (const id of p.parents) load.set(id, load.get(id)! - 1);
    for (const id of next) {
      const l = (load.get(id) ?? 0) + 1;
      load.set(id, l);
      const cap = id === seedInfo.id ? seedMaxChildren : maxChildren;
      assert.ok(l <= cap, `${id} has ${l} children (cap ${cap})`);
      if (l > maxLoadSeen) maxLoadSeen = l;
    }
    p.parents = next;
  };

  let crashedCount = 0;
  let reports = 0;
  const announce = (p: Sim) => {
    if (p.crashed) return;
    // A crashed parent is noticed (connection refused) and reported on the next announce.
    const lost = p.parents.filter((id) => crashedIds.has(id));
    if (lost.length > 0) {
      setParents(p, p.parents.filter((id) => !crashedIds.has(id)));
      reports += lost.length;
    }
    // Progress since the last announce: 5 pieces/s per parent, never beyond what the best parent has.
    if (p.completed < PIECES && p.parents.length > 0) {
      const best = Math.max(...p.parents.map((id) => completedOf.get(id) ?? 0));
      const gained = Math.floor(((now - p.last) / 1000) * 5 * p.parents.length);
      p.completed = Math.min(PIECES, Math.max(p.completed, Math.min(best, p.completed + gained)));
      completedOf.set(p.info.id, p.completed);
    }
    p.last = now;
    const isDone = p.completed >= PIECES;
    const t0 = process.hrtime.bigint();
    const r = core.announce(
      {
        peer: p.info,
        task: { digest: DIGEST, repo: 'team/app' },
        state: isDone ? 'done' : p.completed > 0 ? 'downloading' : 'started',
        completedPieces: p.completed,
        wantParents: isDone ? 0 : 4 - p.parents.length,
        ...(lost.length > 0 ? { badPeers: lost.map((peerId) => ({ peerId, reason: 'unreachable' as const })) } : {}),
      },
      now,
    );
    coreNs += process.hrtime.bigint() - t0;
    announces++;
    assert.equal(r.backToSource, false, 'a seed exists: nobody goes to the origin');
    if (isDone) {
      // The core released this peer's parents when it announced done.
      setParents(p, []);
      if (!p.finished) {
        p.finished = true;
        done++;
      }
    } else {
      // Like the downloader: wantParents is "how many more", and new parents add to the set.
      setParents(p, [...p.parents, ...r.parents.map((x) => x.id)]);
      if (p.parents.length > 0) p.everParented = true;
      else if (now > manifestAt + 1) p.emptyAfterManifest++;
    }
    if (done < N - crashedCount) events.push(now + r.announceIntervalMs, () => announce(p));
  };

  core.heartbeat({ peer: seedInfo }, 0);
  const heartbeat = () => {
    core.heartbeat({ peer: seedInfo }, now);
    core.expire(now);
    if (done < N - crashedCount) events.push(now + 1000, heartbeat);
  };
  events.push(1000, heartbeat);
  for (let i = 0; i < N; i++) {
    const info: PeerInfo = { id: `agent-${i}`, url: `http://127.0.0.1:1/${i}`, role: 'agent', labels: { dc: `d${i % 2}`, zone: `z${i % 4}`, rack: `r${i % 50}` } };
    const p: Sim = { info, completed: 0, last: 0, parents: [], everParented: false, emptyAfterManifest: 0, finished: false, crashed: false };
    peers.push(p);
    events.push(Math.floor(random() * 5000), () => announce(p));
    if (random() < CRASH_SHARE) {
      // Dies silently between 3 s and 10 s, downloading or done; its children must route around it.
      events.push(3000 + Math.floor(random() * 7000), () => {
        if (p.finished) done--;
        p.crashed = true;
        crashedIds.add(info.id);
        crashedCount++;
        setParents(p, []);
      });
    }
  }

  const wall = process.hrtime.bigint();
  while (events.size > 0 && now < 600_000) {
    const [t, fn] = events.pop();
    now = t;
    if (manifestAt === Infinity && core.taskStatus(DIGEST)?.pieces) manifestAt = now;
    fn();
  }
  const wallMs = Number(process.hrtime.bigint() - wall) / 1e6;

  const st = core.stats();
  const perAnnounceUs = Number(coreNs) / 1000 / announces;
  const emptyAfter = peers.reduce((a, p) => a + p.emptyAfterManifest, 0);
  console.log(
    `scale: ${N} peers done at t=${(now / 1000).toFixed(1)} s (virtual); ${announces} announces (${(announces / N).toFixed(2)}/peer), ` +
      `${perAnnounceUs.toFixed(1)} µs/announce in the core, ${st.parentsHandedOut} parents handed out, max children ${maxLoadSeen}, ` +
      `interval ${st.announceIntervalMs} ms, empty answers after the manifest ${emptyAfter}, ${crashedCount} crashed, ${reports} reports, ` +
      `${st.cooldowns} cool-downs, sim wall ${wallMs.toFixed(0)} ms`,
  );

  assert.ok(crashedCount > N * 0.01, `${crashedCount} peers crashed`);
  assert.equal(done, N - crashedCount, 'every surviving peer finished');
  assert.ok(peers.every((p) => p.everParented || p.crashed), 'every peer got at least one parent');
  assert.ok(st.badPeerReports >= reports && reports > 0, `crashed parents were reported (${reports})`);
  assert.equal(st.announces, announces, 'the core saw exactly the announces we sent');
  assert.ok(announces <= N * 12, `O(peers): ${announces} announces for ${N} peers`);
  assert.equal(seedFetches, 1, 'one origin fetch for the whole fleet');
  assert.equal(st.backToSourceGrants, 0);
  assert.ok(emptyAfter < N * 0.01, `after the manifest almost no announce comes back empty (${emptyAfter})`);
  // The core's own accounting agrees with the independent one above.
  for (const m of core.inspect(DIGEST)) assert.ok(m.children <= m.cap);
});
