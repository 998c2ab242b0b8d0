import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseManifest } from '../../../src/oci/manifest.js';
import { digestOf } from '../../../src/oci/digest.js';
import { RegistryError } from '../../../src/oci/errors.js';
import { OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_EMPTY } from '../../../src/oci/media-types.js';

const digest = fc.uint8Array({ maxLength: 16 }).map((b) => digestOf(b));
const mediaType = fc.constantFrom('application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar', 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', 'application/octet-stream');
const descriptor = fc.record({ mediaType, digest, size: fc.nat() }, { requiredKeys: ['mediaType', 'digest', 'size'] });
const annotations = fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 3 });

const imageManifest = fc.record(
  {
    schemaVersion: fc.constant(2),
    mediaType: fc.constant(OCI_MANIFEST),
    config: descriptor,
    layers: fc.array(descriptor, { maxLength: 5 }),
    annotations,
    subject: descriptor,
    artifactType: fc.constant('application/vnd.example+type'),
  },
  { requiredKeys: ['schemaVersion', 'mediaType', 'config', 'layers'] },
);
const index = fc.record(
  { schemaVersion: fc.constant(2), mediaType: fc.constant(OCI_INDEX), manifests: fc.array(descriptor.map((d) => ({ ...d, mediaType: OCI_MANIFEST })), { maxLength: 5 }), annotations },
  { requiredKeys: ['schemaVersion', 'mediaType', 'manifests'] },
);
const enc = (v: unknown) => Buffer.from(JSON.stringify(v));

test('valid image manifests parse, and every config/layer is a required blob', () => {
  fc.assert(
    fc.property(imageManifest, (m) => {
      const p = parseManifest(enc(m), OCI_MANIFEST);
      assert.equal(p.kind, 'image');
      assert.deepEqual(p.blobs.map((b) => b.digest), [m.config.digest, ...m.layers.map((l) => l.digest)]);
      assert.equal(p.subject?.digest, m.subject?.digest);
      assert.equal(p.artifactType, m.artifactType ?? m.config.mediaType);
    }),
  );
});

test('valid indexes parse and list their children', () => {
  fc.assert(
    fc.property(index, (m) => {
      const p = parseManifest(enc(m), OCI_INDEX);
      assert.equal(p.kind, 'index');
      assert.deepEqual(p.manifests.map((d) => d.digest), m.manifests.map((d) => d.digest));
    }),
  );
});

test('arbitrary bytes and arbitrary JSON never crash the parser: valid or MANIFEST_INVALID', () => {
  const anyInput = fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), fc.jsonValue().map(enc), imageManifest.chain((m) => fc.constantFrom<unknown>(
    { ...m, schemaVersion: 1 },
    { ...m, config: { ...m.config, digest: 'sha256:short' } },
    { ...m, config: { ...m.config, size: -1 } },
    { ...m, layers: 'nope' },
    { ...m, mediaType: DOCKER_MANIFEST },
    { ...m, manifests: [] },
  ).map(enc)));
  fc.assert(
    fc.property(anyInput, fc.constantFrom(OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, undefined, 'text/plain'), (body, ct) => {
      try {
        parseManifest(body, ct);
      } catch (e) {
        assert.ok(e instanceof RegistryError, `unexpected ${(e as Error).stack}`);
        assert.equal(e.code, 'MANIFEST_INVALID');
      }
    }),
  );
});

test('specific refusals name the problem', () => {
  const good = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_EMPTY, digest: digestOf('{}'), size: 2 }, layers: [] };
  const bad = (body: unknown, ct: string | undefined, fragment: string) =>
    assert.throws(() => parseManifest(enc(body), ct), (e) => e instanceof RegistryError && e.code === 'MANIFEST_INVALID' && e.message.includes(fragment));
  bad(good, OCI_INDEX, 'does not match Content-Type');
  bad(good, 'application/vnd.unknown+json', 'unsupported manifest media type');
  bad({ ...good, mediaType: undefined }, DOCKER_MANIFEST, 'Docker manifests must carry');
  bad({ ...good, layers: [{ mediaType: 'x', digest: digestOf('a'), size: 1 }] }, OCI_MANIFEST, 'layers[0].mediaType');
  assert.throws(() => parseManifest(Buffer.from('{'), OCI_MANIFEST), /not valid JSON/);
  // Non-distributable layers are not required blobs.
  const foreign = { ...good, layers: [{ mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest: digestOf('f'), size: 1, urls: ['https://example.invalid/f'] }] };
  assert.equal(parseManifest(enc(foreign), OCI_MANIFEST).blobs.length, 1);
  // No Content-Type: inferred from the body.
  assert.equal(parseManifest(enc({ schemaVersion: 2, manifests: [] }), undefined).mediaType, OCI_INDEX);
});
