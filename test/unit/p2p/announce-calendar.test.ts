// The announce calendar: a fleet that starts in one instant must not re-announce in one instant,
// and a fleet within budget must see exactly the plain interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AnnounceCalendar } from '../../../src/p2p/scheduler/announce-calendar.js';
import { SchedulerCore } from '../../../src/p2p/scheduler/core.js';
import { seededRandom } from '../../../src/p2p/scheduler/random.js';
import { digestOf } from '../../../src/oci/digest.js';
import type { PeerInfo } from '../../../src/p2p/protocol.js';

test('within budget every reply gets the interval it wanted, and no random number is drawn', () => {
  const cal = new AnnounceCalendar(100, 30_000);
  const never = () => assert.fail('random drawn within budget');
  for (let i = 0; i < 100; i++) assert.equal(cal.plan(500, 2000 + i, never), 2000 + i);
});

test('a burst is spread over later seconds, never more than the budget planned in one second', () => {
  const cal = new AnnounceCalendar(50, 30_000);
  const rng = seededRandom(3);
  const perSecond = new Map<number, number>();
  for (let i = 0; i < 400; i++) {
    const ms = cal.plan(0, 2000, rng);
    assert.ok(ms >= 2000, `never sooner than wanted (${ms})`);
    const s = Math.floor(ms / 1000);
    perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
  }
  for (const [s, n] of perSecond) assert.ok(n <= 50, `second ${s}: ${n} planned`);
  assert.deepEqual([...perSecond.keys()].sort((a, b) => a - b), [2, 3, 4, 5, 6, 7, 8, 9]);
});

test('past the horizon the reply waits the horizon; seconds that went by are reused', () => {
  const cal = new AnnounceCalendar(1, 3000);
  const rng = () => 0.5;
  assert.equal(cal.plan(0, 1000, rng), 1000);
  assert.equal(cal.plan(0, 1000, rng), 2500);
  assert.equal(cal.plan(0, 1000, rng), 3500);
  assert.equal(cal.plan(0, 1000, rng), 3000);
  // Ten seconds on, the ring slots count for new seconds.
  assert.equal(cal.plan(10_000, 1000, rng), 1000);
});

test('SchedulerCore: 3,000 agents announcing at once with a budget of 500/s plan at most 500 announces per second', () => {
  const core = new SchedulerCore({ random: seededRandom(9), announceBudgetPerSec: 500, minPeerTtlMs: 0 });
  const digest = digestOf('layer');
  const perSecond = new Map<number, number>();
  for (let i = 0; i < 3000; i++) {
    const peer: PeerInfo = { id: `a${i}`, url: `http://127.0.0.1:1/a${i}`, role: 'agent', labels: {} };
    const res = core.announce({ peer, task: { digest, size: 40 }, state: 'started', completedPieces: 0, wantParents: 4 }, 0);
    const s = Math.floor(res.announceIntervalMs / 1000);
    perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
  }
  for (const [s, n] of perSecond) assert.ok(n <= 500, `second ${s}: ${n} announces planned`);
  assert.ok(perSecond.size >= 6, `spread over ${perSecond.size} seconds`);
});

test('SchedulerCore: replies ask for spread parent swaps (swapSpreadMs) only while the second is over the announce budget', () => {
  const core = new SchedulerCore({ random: seededRandom(9), announceBudgetPerSec: 100, minPeerTtlMs: 0 });
  const digest = digestOf('layer');
  const spreadAt = (second: number, n: number) => {
    const spreads: Array<number | undefined> = [];
    for (let i = 0; i < n; i++) {
      const peer: PeerInfo = { id: `s${second}-${i}`, url: `http://127.0.0.1:1/${second}-${i}`, role: 'agent', labels: {} };
      spreads.push(core.announce({ peer, task: { digest, size: 40 }, state: 'started', completedPieces: 0, wantParents: 4 }, second * 1000 + i).swapSpreadMs);
    }
    return spreads;
  };
  const burst = spreadAt(0, 150);
  assert.ok(burst.slice(0, 100).every((s) => s === undefined), 'within budget: no spread');
  assert.ok(burst.slice(100).every((s) => s === 1000), 'over budget: the default 1 s spread');
  assert.ok(spreadAt(5, 50).every((s) => s === undefined), 'a later, quiet second: no spread');
  const off = new SchedulerCore({ random: seededRandom(9), announceBudgetPerSec: 1, loadedSwapSpreadMs: 0 });
  const peer = (id: string): PeerInfo => ({ id, url: `http://127.0.0.1:1/${id}`, role: 'agent', labels: {} });
  off.announce({ peer: peer('x'), task: { digest, size: 40 }, state: 'started', completedPieces: 0, wantParents: 4 }, 0);
  assert.equal(off.announce({ peer: peer('y'), task: { digest, size: 40 }, state: 'started', completedPieces: 0, wantParents: 4 }, 1).swapSpreadMs, undefined, 'loadedSwapSpreadMs 0 turns it off');
});
