// The pure rules for letting parents go and asking for more (shared by TaskDownloader and the
// simulator's thin engine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitfield } from '../../../src/p2p/peer/bitfield.js';
import { earlyAnnounceAt, idleParents, nextIdleCheckAt, offersSomething, releaseDelayMs, drawReleaseDelay, type AnnounceState, type ParentUsage } from '../../../src/p2p/peer/parent-policy.js';

const bits = (n: number, held: number[]) => {
  const b = new Bitfield(n);
  for (const i of held) b.set(i);
  return b;
};
const none = new Set<number>();

test('offersSomething: only pieces we lack that nobody is fetching count', () => {
  const have = bits(8, [0, 1]);
  assert.equal(offersSomething(bits(8, [0, 1]), have, 8, none), false, 'a subset of ours');
  assert.equal(offersSomething(bits(8, [0, 5]), have, 8, none), true);
  assert.equal(offersSomething(bits(8, [0, 5]), have, 8, new Set([5])), false, 'piece 5 is in flight elsewhere');
});

test('idleParents: releases parents unused for idleMs with nothing to offer, keeps busy, useful and recent ones', () => {
  const have = bits(8, [0, 1, 2]);
  const mk = (id: string, usedAt: number, active: number, held: number[] | null): ParentUsage & { id: string } => ({ id, usedAt, active, pieces: held && bits(8, held), busy: 0 });
  const stale = mk('stale', 0, 0, [0, 1]);
  const busy = mk('busy', 0, 2, [0]);
  const useful = mk('useful', 0, 0, [7]);
  const recent = mk('recent', 900, 0, [0]);
  const silent = mk('silent', 0, 0, null);
  const out = idleParents([stale, busy, useful, recent, silent], { now: 1000, idleMs: 500, have, numPieces: 8, inFlight: none, keep: 1, busyRelease: 0 });
  assert.deepEqual(out.map((p) => p.id).sort(), ['silent', 'stale']);
  assert.equal(useful.usedAt, 1000, 'an unused parent that still offers something is marked used (checked again in idleMs)');
  assert.deepEqual(idleParents([stale], { now: 1000, idleMs: 0, have, numPieces: 8, inFlight: none, keep: 0, busyRelease: 0 }), [], 'idleMs 0 disables it');
});

test('idleParents: never goes below `keep`; the kept idle parent is looked at again idleMs later', () => {
  const have = bits(4, [0]);
  const a = { id: 'a', usedAt: 0, active: 0, pieces: bits(4, [0]), busy: 0 };
  const b = { id: 'b', usedAt: 100, active: 0, pieces: bits(4, []), busy: 0 };
  const out = idleParents([a, b], { now: 1000, idleMs: 500, have, numPieces: 4, inFlight: none, keep: 1, busyRelease: 0 });
  assert.deepEqual(out.map((p) => p.id), ['a'], 'the least recently used goes');
  assert.equal(b.usedAt, 1000);
  assert.equal(nextIdleCheckAt([b], 500), 1500, 'no busy loop on a kept idle parent');
  assert.equal(nextIdleCheckAt([{ usedAt: 0, active: 1, pieces: null, busy: 0 }], 500), Infinity, 'requests in flight: nothing to check');
});

test('idleParents: a parent "busy" busyRelease times in a row goes at once, though it offers something and was just asked', () => {
  const have = bits(8, [0]);
  const mk = (id: string, busy: number, active = 0) => ({ id, usedAt: 990, active, pieces: bits(8, [5, 6]), busy });
  const full = mk('full', 6);
  const shortStreak = mk('short', 5);
  const asked = mk('asked', 9, 1);
  const check = { now: 1000, idleMs: 2000, have, numPieces: 8, inFlight: none, keep: 1 };
  assert.deepEqual(idleParents([full, shortStreak, asked], { ...check, busyRelease: 6 }).map((p) => p.id), ['full'], 'a shorter streak stays, and so does one with a request in flight');
  assert.deepEqual(idleParents([full, shortStreak], { ...check, busyRelease: 0 }), [], 'busyRelease 0 disables it');
  assert.deepEqual(idleParents([full, shortStreak], { ...check, idleMs: 0, busyRelease: 6 }).map((p) => p.id), ['full'], 'works with idle release off');
  assert.deepEqual(idleParents([full, mk('full2', 7)], { ...check, keep: 1, busyRelease: 6 }).length, 1, 'never below keep');
});

test('earlyAnnounceAt: lost parents below minParents, released ones below wantParents, never before the first announce', () => {
  const base: AnnounceState = { announcedOnce: true, lastAnnounceAt: 10_000, intervalMs: 8000, lost: 0, released: 0, active: 5, minParents: 2, wantParents: 10, earlyGapMs: 1000 };
  assert.equal(earlyAnnounceAt(base), null);
  assert.equal(earlyAnnounceAt({ ...base, lost: 1, active: 1 }), 11_000, 'fault losses: earlyGapMs');
  assert.equal(earlyAnnounceAt({ ...base, lost: 1, active: 3 }), null, 'still at or above minParents');
  assert.equal(earlyAnnounceAt({ ...base, released: 2, active: 8 }), 14_000, 'swaps: half an interval (the scheduler sheds load by raising it)');
  assert.equal(earlyAnnounceAt({ ...base, released: 2, active: 8, intervalMs: 1000 }), 11_000, 'never sooner than earlyGapMs');
  assert.equal(earlyAnnounceAt({ ...base, released: 2, active: 10 }), null, 'nothing to replace');
  assert.equal(earlyAnnounceAt({ ...base, released: 6, active: 4 }), 11_000, 'released to under half of wantParents: starving, earlyGapMs');
  assert.equal(earlyAnnounceAt({ ...base, released: 6, active: 4, releaseDelayMs: 700 }), 11_700, 'starving: spread like any swap while the scheduler asks for it');
  assert.equal(earlyAnnounceAt({ ...base, released: 5, active: 5 }), 14_000, 'half of wantParents is not starving');
  assert.equal(earlyAnnounceAt({ ...base, announcedOnce: false, lost: 3, active: 0 }), null);
});

test('release spread: swaps wait a drawn share of min(spread, half an interval) more; fault losses do not', () => {
  assert.equal(releaseDelayMs(0, 8000, 1000), 0);
  assert.equal(releaseDelayMs(0.5, 8000, 1000), 500, 'the spread binds on a long interval');
  assert.equal(releaseDelayMs(0.5, 1200, 1000), 300, 'half an interval binds on a short one');
  assert.equal(releaseDelayMs(0.9, 8000, 0), 0, 'no spread');
  // drawReleaseDelay: the scheduler's swapSpreadMs capped by the peer's own; no draw without one.
  let draws = 0;
  const rng = () => (draws++, 0.5);
  assert.equal(drawReleaseDelay(rng, 8000, 1000, undefined), 0);
  assert.equal(drawReleaseDelay(rng, 8000, 0, 1000), 0, 'the peer turned spreading off');
  assert.equal(draws, 0, 'within the budget no random number is drawn (runs stay as they were)');
  assert.equal(drawReleaseDelay(rng, 8000, 1000, 600), 300);
  assert.equal(drawReleaseDelay(rng, 8000, 400, 1000), 200, 'capped by the peer');
  assert.equal(draws, 2);
  const base: AnnounceState = { announcedOnce: true, lastAnnounceAt: 10_000, intervalMs: 8000, lost: 0, released: 2, active: 8, minParents: 2, wantParents: 10, earlyGapMs: 1000, releaseDelayMs: 700 };
  assert.equal(earlyAnnounceAt(base), 14_700);
  assert.equal(earlyAnnounceAt({ ...base, releaseDelayMs: 6000 }), 18_000, 'never later than the regular announce');
  assert.equal(earlyAnnounceAt({ ...base, released: 0, lost: 1, active: 1 }), 11_000, 'a fault loss is replaced without the spread');
  // Spread over a fleet: 1,000 draws put about as many early announces in each 100 ms of the second after the half interval.
  const perTenth = new Array(10).fill(0);
  for (let i = 0; i < 1000; i++) perTenth[Math.floor(releaseDelayMs((i + 0.5) / 1000, 8000, 1000) / 100)]++;
  assert.deepEqual(perTenth, new Array(10).fill(100));
});

test('slow pieces stretch the idle limit and the busy pause (no churn, no 503 storm on a 6 Mbit/s link)', async () => {
  const { idleLimitMs, busyPauseMs, nextPieceMs } = await import('../../../src/p2p/peer/parent-policy.js');
  assert.equal(idleLimitMs(2000, 0), 2000, 'unknown piece time: the configured limit');
  assert.equal(idleLimitMs(2000, 300), 2000, 'fast pieces (1 Gbit/s): the configured limit');
  assert.equal(idleLimitMs(2000, 11_000), 33_000, 'a 4 MiB piece at 3 Mbit/s: three piece-times');
  assert.equal(idleLimitMs(0, 11_000), 0, 'disabled stays disabled');
  assert.equal(busyPauseMs(100, 300), 100);
  assert.equal(busyPauseMs(100, 11_000), 1100);
  assert.deepEqual([1, 2, 3, 4, 9].map((n) => busyPauseMs(100, 300, n)), [100, 200, 400, 400, 400], '"busy" in a row: doubled, at most 4 x');
  assert.equal(nextPieceMs(0, 800), 800, 'first sample as is');
  assert.equal(nextPieceMs(800, 400), 700, 'then a quarter of the way to each new sample');
});

test('recordBusy: an agent parent builds its busy streak and pauses longer each time; a seed pauses the base and never builds one', async () => {
  const { recordBusy, busyPauseMs } = await import('../../../src/p2p/peer/parent-policy.js');
  const agent = { busy: 0, pausedUntil: 0 };
  recordBusy(agent, false, 1000, 100, 300);
  assert.deepEqual(agent, { busy: 1, pausedUntil: 1100 });
  recordBusy(agent, false, 2000, 100, 300);
  assert.deepEqual(agent, { busy: 2, pausedUntil: 2000 + busyPauseMs(100, 300, 2) });
  assert.equal(agent.pausedUntil, 2200);
  const seed = { busy: 0, pausedUntil: 0 };
  for (let i = 0; i < 6; i++) recordBusy(seed, true, 1000 * i, 100, 300);
  assert.deepEqual(seed, { busy: 0, pausedUntil: 5100 }, 'six busy answers from a seed: no streak, so never released for it');
  recordBusy(seed, true, 0, 100, 11_000);
  assert.equal(seed.pausedUntil, 1100, 'slow pieces: a tenth of a piece-time, as the first busy from anyone');
});
