import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downloaderDefaults } from '../../../src/sim/engines/knobs.js';

test('scenario downloader options: real defaults, overrides bounded as the downloader bounds them, unknown names refused', () => {
  const d = downloaderDefaults({});
  assert.equal(d.wantParents, 16);
  assert.equal(d.maxParents, 18);
  assert.equal(d.maxInFlight, 3);
  const o = downloaderDefaults({ wantParents: 4, maxParents: 2, minParents: 9 });
  assert.equal(o.maxParents, 4, 'maxParents is raised to wantParents');
  assert.equal(o.minParents, 4, 'minParents is capped at wantParents');
  assert.throws(() => downloaderDefaults({ wantParent: 3 }), /downloader\.wantParent: not a TaskDownloader option/);
});
