import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRange } from '../../../src/registry/handlers/blobs.js';
import { ManifestCache } from '../../../src/registry/manifest-cache.js';
import { digestOf } from '../../../src/oci/digest.js';

test('Range parsing follows RFC 9110 single ranges', () => {
  assert.equal(parseRange(undefined, 100), null);
  assert.deepEqual(parseRange('bytes=10-19', 100), { start: 10, end: 19 });
  assert.deepEqual(parseRange('bytes=10-', 100), { start: 10, end: 99 });
  assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-1000', 100), { start: 0, end: 99 });
  assert.deepEqual(parseRange('bytes=90-1000', 100), { start: 90, end: 99 }, 'end is clamped');
  assert.equal(parseRange('bytes=50-0', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=100-200', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=-0', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=abc', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=0-1,5-6', 100), null, 'multi-range: serve the whole blob');
});

test('manifest cache: tag and digest entries, invalidation, TTL and byte bound', () => {
  const cache = new ManifestCache({ maxBytes: 1000, ttlMs: 100 });
  const m = (s: string) => ({ digest: digestOf(s), mediaType: 'x', body: Buffer.alloc(200, s), etag: `"${digestOf(s)}"`, headers: {} });
  cache.setManifest('r', m('a'), 0);
  cache.setTag('r', 'latest', digestOf('a'), 0);
  assert.equal(cache.getTag('r', 'latest', 50), digestOf('a'));
  assert.equal(cache.getManifest('r', digestOf('a'), 50)?.body.length, 200);
  assert.equal(cache.getManifest('other', digestOf('a'), 50), undefined, 'entries are per repository');
  assert.equal(cache.getTag('r', 'latest', 101), undefined, 'expired');
  cache.setTag('r', 'latest', digestOf('a'), 200);
  cache.deleteManifest('r', digestOf('a'));
  assert.equal(cache.getTag('r', 'latest', 210), undefined, 'deleting a manifest drops tags pointing at it');
  for (const s of ['b', 'c', 'd', 'e', 'f', 'g']) cache.setManifest('r', m(s), 300);
  assert.ok(cache.size.bytes <= 1000);
  assert.equal(cache.getManifest('r', digestOf('b'), 300), undefined, 'least recently used evicted first');
  assert.ok(cache.getManifest('r', digestOf('g'), 300));
});
