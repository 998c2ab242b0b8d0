// Which blobs an agent prefetches when a manifest passes through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blobsToPrefetch, parsePrefetchOrder, PREFETCH_MANIFEST_LIMIT, PREFETCH_MAX_BLOBS } from '../../../src/p2p/agent/layer-prefetch.js';
import { digestOf } from '../../../src/oci/digest.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const desc = (name: string, size: number, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip') => ({ mediaType, digest: digestOf(name), size });
const manifest = (layers: number) =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: desc('config', 10, 'application/vnd.oci.image.config.v1+json'), layers: Array.from({ length: layers }, (_, i) => desc(`layer${i}`, 100 + i)) }));

test('an image manifest yields its config and layers, in order', () => {
  const got = blobsToPrefetch(manifest(3), OCI_MANIFEST);
  assert.deepEqual(got.map((b) => b.digest), [digestOf('config'), digestOf('layer0'), digestOf('layer1'), digestOf('layer2')]);
  assert.deepEqual(got.map((b) => b.size), [10, 100, 101, 102]);
});

test('an index, another media type, a malformed or oversized body yield nothing', () => {
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [desc('m', 5, OCI_MANIFEST)] }));
  assert.deepEqual(blobsToPrefetch(index, 'application/vnd.oci.image.index.v1+json'), []);
  assert.deepEqual(blobsToPrefetch(manifest(2), 'application/json'), []);
  assert.deepEqual(blobsToPrefetch(Buffer.from('{"schemaVersion": 2, "layers": [{"digest": 1}]}'), OCI_MANIFEST), []);
  assert.deepEqual(blobsToPrefetch(Buffer.alloc(PREFETCH_MANIFEST_LIMIT + 1, 32), OCI_MANIFEST), []);
});

test('at most PREFETCH_MAX_BLOBS blobs of one manifest', () => {
  assert.equal(blobsToPrefetch(manifest(PREFETCH_MAX_BLOBS + 10), OCI_MANIFEST).length, PREFETCH_MAX_BLOBS);
});

test('prefetch orders: a digest and a repository are required, a registry is optional; problems are named', () => {
  const digest = digestOf(Buffer.from('layer'));
  assert.deepEqual(parsePrefetchOrder({ digest, repo: 'team/app', registry: 'http://r:5000' }), { digest, repo: 'team/app' });
  assert.deepEqual(parsePrefetchOrder({ digest: 'sha256:nothex', repo: 'team/app' }), { problems: ['digest: not a digest'] });
  assert.deepEqual(parsePrefetchOrder({ digest, repo: 'Team/App' }), { problems: ['repo: not a repository name'] });
  assert.deepEqual(parsePrefetchOrder({ digest, repo: 'a', registry: 5 }), { problems: ['registry: not a string'] });
  assert.deepEqual(parsePrefetchOrder(null), { problems: ['digest: not a digest', 'repo: not a repository name'] });
});
