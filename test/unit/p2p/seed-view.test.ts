// SeedView (src/p2p/peer/seed-view.ts): super-seeding's view of a seed's pieces, with the clock
// passed in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeedView } from '../../../src/p2p/peer/seed-view.js';

const shown = (v: SeedView) => [...Array(v.numPieces).keys()].filter((i) => v.visible.has(i));

test('a seed shows every piece until it serves one, then hides each piece served more than the least-served', () => {
  const v = new SeedView(4, 2000);
  assert.deepEqual(shown(v), [0, 1, 2, 3]);
  assert.equal(v.servedAt(1, 0), true);
  assert.deepEqual(v.changed, [1]);
  assert.deepEqual(shown(v), [0, 2, 3]);
  assert.equal(v.version, 1);
  // A stale child asks for a hidden piece: served (counted), nothing changes in the view.
  assert.equal(v.servedAt(1, 10), false);
  assert.equal(v.version, 1);
  v.servedAt(0, 20);
  v.servedAt(3, 30);
  assert.deepEqual(shown(v), [2]);
});

test('when every piece has caught up, the pieces served that often are shown again (a new round)', () => {
  const v = new SeedView(3, 2000);
  v.servedAt(0, 0);
  v.servedAt(1, 0);
  v.servedAt(0, 0); // piece 0 twice
  assert.deepEqual(shown(v), [2]);
  v.servedAt(2, 0); // every piece served once: 1 and 2 back, 0 (twice) stays hidden
  assert.deepEqual(shown(v), [1, 2]);
  v.servedAt(1, 0);
  v.servedAt(2, 0); // all twice
  assert.deepEqual(shown(v), [0, 1, 2]);
});

test('a piece hidden for holdMs is shown again, so a child whose only source it is waits at most that long', () => {
  const v = new SeedView(3, 2000);
  v.servedAt(0, 100);
  v.servedAt(0, 150);
  assert.equal(v.nextRevealAt(), 2100);
  assert.equal(v.refresh(2099), false);
  assert.equal(v.refresh(2100), true);
  assert.deepEqual(v.changed, [0]);
  assert.deepEqual(shown(v), [0, 1, 2]);
  assert.equal(v.nextRevealAt(), Infinity);
  // Served again while still above the least-served count: hidden again from then.
  v.servedAt(0, 3000);
  assert.deepEqual(shown(v), [1, 2]);
  assert.equal(v.nextRevealAt(), 5000);
});

test('at least one piece is always shown, whatever the order of serves', () => {
  const v = new SeedView(16, 1000);
  let x = 7;
  for (let k = 0; k < 500; k++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    v.servedAt(x % 16, k);
    assert.ok(v.visible.count > 0, `after ${k + 1} serves`);
  }
});
