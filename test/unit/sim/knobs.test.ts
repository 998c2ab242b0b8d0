import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downloaderDefaults } from '../../../src/sim/engines/knobs.js';
import { inFlightShare } from '../../../src/p2p/peer/downloader.js';

test('scenario downloader options: real defaults, overrides bounded as the downloader bounds them, unknown names refused', () => {
  const d = downloaderDefaults({});
  assert.equal(d.wantParents, 16);
  assert.equal(d.maxParents, 18);
  assert.equal(d.maxInFlight, 8);
  const o = downloaderDefaults({ wantParents: 4, maxParents: 2, minParents: 9 });
  assert.equal(o.maxParents, 4, 'maxParents is raised to wantParents');
  assert.equal(o.minParents, 4, 'minParents is capped at wantParents');
  assert.throws(() => downloaderDefaults({ wantParent: 3 }), /downloader\.wantParent: not a TaskDownloader option/);
});

test('concurrent downloads of a peer share its requests in flight evenly, rounded up, at least one each', () => {
  assert.deepEqual([1, 2, 3, 4, 8, 20].map((n) => inFlightShare(8, n)), [8, 4, 3, 2, 1, 1]);
  assert.equal(inFlightShare(8, 0), 8);
});
