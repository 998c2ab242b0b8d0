// OCI Distribution Spec v1.1 conformance: the Pull workflow (end-1, end-2, end-3).
// Every conforming registry MUST support this category.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCEPT_ALL_MANIFESTS,
  EMPTY_JSON_BLOB,
  EMPTY_JSON_DIGEST,
  MT,
  assertContentLength,
  assertDigestHeader,
  assertError,
  assertErrorBodyIfJson,
  assertStatus,
  blobOf,
  digestOf,
  pushBlob,
  pushImage,
  randomBlob,
  registryPerFile,
  uniqueRepo,
  uniqueTag,
  type BlobData,
  type BuiltImage,
  type RegistryClient,
  type TestRegistry,
} from '../support/oci-http.js';

let reg: TestRegistry;
let c: RegistryClient;
registryPerFile((r) => {
  reg = r;
  c = r.client;
});

describe('determining support (end-1)', () => {
  test('GET /v2/ answers 200', async () => {
    const res = await c.get('/v2/');
    assertStatus(res, 200);
  });

  test('GET /v2/ sends Docker-Distribution-API-Version: registry/2.0', async () => {
    const res = await c.get('/v2/');
    assertStatus(res, 200);
    assert.equal(res.header('docker-distribution-api-version'), 'registry/2.0');
  });

  test('GET /v2/ body, if any, is JSON', async () => {
    const res = await c.get('/v2/');
    assertStatus(res, 200);
    if (res.body.length > 0) assert.equal(typeof res.json(), 'object');
  });
});

describe('pulling blobs (end-2)', () => {
  let repo: string;
  let blob: BlobData;

  before(async () => {
    repo = uniqueRepo('pull-blobs');
    blob = randomBlob(4096);
    await pushBlob(c, repo, blob);
  });

  test('HEAD on an existing blob answers 200 with Content-Length and Docker-Content-Digest, no body', async () => {
    const res = await c.head(`/v2/${repo}/blobs/${blob.digest}`);
    assertStatus(res, 200);
    assertContentLength(res, blob.size);
    assertDigestHeader(res, blob.digest);
    assert.equal(res.body.length, 0, 'HEAD must not return a body');
  });

  test('GET on an existing blob answers 200 with the exact bytes', async () => {
    const res = await c.get(`/v2/${repo}/blobs/${blob.digest}`);
    assertStatus(res, 200);
    assert.ok(res.body.equals(blob.data), 'body differs from the uploaded blob');
    assertContentLength(res, blob.size);
  });

  test('GET on a blob sends Docker-Content-Digest matching the body', async () => {
    const res = await c.get(`/v2/${repo}/blobs/${blob.digest}`);
    assertStatus(res, 200);
    assertDigestHeader(res, blob.digest);
    assert.equal(digestOf(res.body), res.header('docker-content-digest'));
  });

  test('HEAD on a missing blob answers 404', async () => {
    const res = await c.head(`/v2/${repo}/blobs/${randomBlob(32).digest}`);
    assertStatus(res, 404);
    assert.equal(res.body.length, 0);
  });

  test('GET on a missing blob answers 404 BLOB_UNKNOWN', async () => {
    const res = await c.get(`/v2/${repo}/blobs/${randomBlob(32).digest}`);
    assertError(res, 404, 'BLOB_UNKNOWN');
  });

  test('GET on a blob of a repository that does not exist answers 404', async () => {
    const res = await c.get(`/v2/${uniqueRepo('never-pushed')}/blobs/${blob.digest}`);
    assertError(res, 404, ['BLOB_UNKNOWN', 'NAME_UNKNOWN']);
  });

  test('a blob pushed to one repository is not served from another repository', async () => {
    const other = uniqueRepo('pull-other');
    const otherBlob = randomBlob(128);
    await pushBlob(c, other, otherBlob); // the repository exists, but never received `blob`
    const res = await c.get(`/v2/${other}/blobs/${blob.digest}`);
    assertError(res, 404, 'BLOB_UNKNOWN');
    const head = await c.head(`/v2/${other}/blobs/${blob.digest}`);
    assertStatus(head, 404);
  });

  test('the empty JSON blob {} has the well-known digest and can be pulled', async () => {
    assert.equal(EMPTY_JSON_BLOB.digest, EMPTY_JSON_DIGEST);
    const r = uniqueRepo('pull-empty-json');
    await pushBlob(c, r, EMPTY_JSON_BLOB);
    const res = await c.get(`/v2/${r}/blobs/${EMPTY_JSON_DIGEST}`);
    assertStatus(res, 200);
    assert.equal(res.text(), '{}');
    assertContentLength(res, 2);
    assertDigestHeader(res, EMPTY_JSON_DIGEST);
  });

  test('a zero-byte blob can be pushed, HEAD reports Content-Length 0, GET returns nothing', async () => {
    const r = uniqueRepo('pull-zero');
    const empty = blobOf(Buffer.alloc(0));
    await pushBlob(c, r, empty);
    const head = await c.head(`/v2/${r}/blobs/${empty.digest}`);
    assertStatus(head, 200);
    assertContentLength(head, 0);
    assertDigestHeader(head, empty.digest);
    const get = await c.get(`/v2/${r}/blobs/${empty.digest}`);
    assertStatus(get, 200);
    assert.equal(get.body.length, 0);
  });
});

describe('blob range requests (RFC 9110 section 14)', () => {
  const size = 2048;
  let repo: string;
  let blob: BlobData;

  before(async () => {
    repo = uniqueRepo('pull-range');
    blob = randomBlob(size);
    await pushBlob(c, repo, blob);
  });

  function rangeGet(spec: string) {
    return c.get(`/v2/${repo}/blobs/${blob.digest}`, { headers: { range: `bytes=${spec}` } });
  }

  function assertPartial(res: Awaited<ReturnType<typeof rangeGet>>, start: number, end: number) {
    assertStatus(res, 206, 'range request must be honoured with 206 Partial Content');
    assert.ok(res.body.equals(blob.data.subarray(start, end + 1)), `body is not bytes ${start}-${end}`);
    assertContentLength(res, end - start + 1);
    const cr = res.header('content-range');
    assert.ok(
      cr === `bytes ${start}-${end}/${size}` || cr === `bytes ${start}-${end}/*`,
      `Content-Range ${cr} should be bytes ${start}-${end}/${size}`,
    );
  }

  test('bytes=500-1499 returns 206 with those 1000 bytes', async () => {
    assertPartial(await rangeGet('500-1499'), 500, 1499);
  });

  test('bytes=500- returns 206 with the rest of the blob', async () => {
    assertPartial(await rangeGet('500-'), 500, size - 1);
  });

  test('bytes=-500 returns 206 with the last 500 bytes', async () => {
    assertPartial(await rangeGet('-500'), size - 500, size - 1);
  });

  test('bytes=2000-5000 (end past the blob) returns 206 up to the last byte', async () => {
    assertPartial(await rangeGet('2000-5000'), 2000, size - 1);
  });

  test('bytes=0-0 returns 206 with the first byte', async () => {
    assertPartial(await rangeGet('0-0'), 0, 0);
  });

  test('bytes=500-0 (last before first) answers 416', async () => {
    assertStatus(await rangeGet('500-0'), 416);
  });

  test('bytes=5000-10000 (start past the end of a 2048-byte blob) answers 416', async () => {
    assertStatus(await rangeGet('5000-10000'), 416);
  });

  test('a 416 answer carries Content-Range: bytes */<size>', async () => {
    const res = await rangeGet('5000-10000');
    assertStatus(res, 416);
    assert.equal(res.header('content-range'), `bytes */${size}`);
  });
});

describe('pulling manifests (end-3)', () => {
  let repo: string;
  let tag: string;
  let img: BuiltImage;

  before(async () => {
    repo = uniqueRepo('pull-manifests');
    tag = uniqueTag('v1');
    img = await pushImage(c, repo, { ref: tag, layers: 2 });
  });

  const accept = { accept: ACCEPT_ALL_MANIFESTS };

  test('GET by tag answers 200 with the exact bytes, Content-Type and Docker-Content-Digest', async () => {
    const res = await c.get(`/v2/${repo}/manifests/${tag}`, { headers: accept });
    assertStatus(res, 200);
    assert.ok(res.body.equals(img.manifest.bytes), 'manifest bytes differ from what was pushed');
    assert.equal(res.header('content-type'), MT.ociManifest);
    assertDigestHeader(res, img.manifest.digest);
    assertContentLength(res, img.manifest.size);
  });

  test('GET by digest answers 200 with the exact bytes, Content-Type and Docker-Content-Digest', async () => {
    const res = await c.get(`/v2/${repo}/manifests/${img.manifest.digest}`, { headers: accept });
    assertStatus(res, 200);
    assert.ok(res.body.equals(img.manifest.bytes), 'manifest bytes differ from what was pushed');
    assert.equal(res.header('content-type'), MT.ociManifest);
    assertDigestHeader(res, img.manifest.digest);
  });

  test('GET with Accept listing only the manifest media type answers 200', async () => {
    const res = await c.get(`/v2/${repo}/manifests/${tag}`, { headers: { accept: MT.ociManifest } });
    assertStatus(res, 200);
    assert.equal(res.header('content-type'), MT.ociManifest);
  });

  test('HEAD by tag answers 200 with Content-Length, Docker-Content-Digest and no body', async () => {
    const res = await c.head(`/v2/${repo}/manifests/${tag}`, { headers: accept });
    assertStatus(res, 200);
    assertContentLength(res, img.manifest.size);
    assertDigestHeader(res, img.manifest.digest);
    assert.equal(res.header('content-type'), MT.ociManifest);
    assert.equal(res.body.length, 0);
  });

  test('HEAD by digest answers 200 with Content-Length, Docker-Content-Digest and no body', async () => {
    const res = await c.head(`/v2/${repo}/manifests/${img.manifest.digest}`, { headers: accept });
    assertStatus(res, 200);
    assertContentLength(res, img.manifest.size);
    assertDigestHeader(res, img.manifest.digest);
    assert.equal(res.body.length, 0);
  });

  test('every blob the manifest references can be pulled and matches its digest', async () => {
    const res = await c.get(`/v2/${repo}/manifests/${tag}`, { headers: accept });
    assertStatus(res, 200);
    const m = res.json<{ config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> }>();
    for (const d of [m.config, ...m.layers]) {
      const b = await c.get(`/v2/${repo}/blobs/${d.digest}`);
      assertStatus(b, 200);
      assert.equal(b.body.length, d.size);
      assert.equal(digestOf(b.body), d.digest);
    }
  });

  test('GET of an unknown tag answers 404 MANIFEST_UNKNOWN', async () => {
    const res = await c.get(`/v2/${repo}/manifests/${uniqueTag('missing')}`, { headers: accept });
    assertError(res, 404, 'MANIFEST_UNKNOWN');
  });

  test('GET of an unknown digest answers 404 MANIFEST_UNKNOWN', async () => {
    const res = await c.get(`/v2/${repo}/manifests/${randomBlob(64).digest}`, { headers: accept });
    assertError(res, 404, 'MANIFEST_UNKNOWN');
  });

  test('HEAD of an unknown tag and an unknown digest answers 404', async () => {
    assertStatus(await c.head(`/v2/${repo}/manifests/${uniqueTag('missing')}`, { headers: accept }), 404);
    assertStatus(await c.head(`/v2/${repo}/manifests/${randomBlob(64).digest}`, { headers: accept }), 404);
  });

  test('GET of a manifest in a repository that does not exist answers 404', async () => {
    const res = await c.get(`/v2/${uniqueRepo('no-such-repo')}/manifests/latest`, { headers: accept });
    assertError(res, 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
  });

  test('GET of a malformed digest (sha256:baddigeststring) answers 400 or 404, never 2xx/5xx', async () => {
    const res = await c.get(`/v2/${repo}/manifests/sha256:baddigeststring`, { headers: accept });
    assertStatus(res, [400, 404]);
    assertErrorBodyIfJson(res, res.status === 400 ? ['DIGEST_INVALID', 'MANIFEST_INVALID', 'MANIFEST_UNKNOWN'] : undefined);
  });

  test('pulls carrying the optional ?ns= parameter (sent by containerd to mirrors) are served', async () => {
    const m = await c.get(`/v2/${repo}/manifests/${tag}`, { headers: accept, query: { ns: 'docker.io' } });
    assertStatus(m, 200);
    assert.ok(m.body.equals(img.manifest.bytes));
    const ns = m.header('oci-namespace');
    if (ns !== undefined) assert.equal(ns, 'docker.io', 'OCI-Namespace must echo the ns parameter');
    const b = await c.get(`/v2/${repo}/blobs/${img.config.digest}`, { query: { ns: 'docker.io' } });
    assertStatus(b, 200);
    assert.ok(b.body.equals(img.config.data));
  });

  test('a manifest pushed to one repository is not served from another', async () => {
    const other = uniqueRepo('pull-manifest-other');
    await pushImage(c, other, { ref: 'latest' });
    const res = await c.get(`/v2/${other}/manifests/${img.manifest.digest}`, { headers: accept });
    assertError(res, 404, 'MANIFEST_UNKNOWN');
  });
});
