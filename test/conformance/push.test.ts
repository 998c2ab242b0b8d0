// OCI Distribution Spec v1.1 conformance: the Push workflow
// (end-4a/4b/4c, end-5, end-6, end-7a/7b, end-11, end-13, end-14) and the manifest data sets of the upstream suite.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import {
  ACCEPT_ALL_MANIFESTS,
  EMPTY_JSON_BLOB,
  EMPTY_JSON_DIGEST,
  MT,
  assertContentLength,
  assertDigestHeader,
  assertError,
  assertErrorBody,
  assertStatus,
  blobOf,
  buildArtifact,
  buildImage,
  buildIndex,
  descriptor,
  digestOf,
  imageConfig,
  manifestDescriptor,
  manifestOf,
  pushArtifact,
  pushBlob,
  pushBlobs,
  pushImage,
  pushManifest,
  randomBlob,
  rangeEnd,
  registryPerFile,
  streamOf,
  uniqueRepo,
  uniqueTag,
  type BlobData,
  type HttpResponse,
  type ManifestData,
  type RegistryClient,
  type TestRegistry,
} from '../support/oci-http.js';

let reg: TestRegistry;
let c: RegistryClient;
registryPerFile((r) => {
  reg = r;
  c = r.client;
});

// ---------------------------------------------------------------------------------------------------------------
// Local helpers

interface Session {
  location: string;
  minChunk: number;
  post: HttpResponse;
}

/** POST /v2/<repo>/blobs/uploads/ with Content-Length: 0; asserts 202 + Location. */
async function startUpload(repo: string, query?: Record<string, string>): Promise<Session> {
  const post = await c.post(`/v2/${repo}/blobs/uploads/`, { headers: { 'content-length': 0 }, query });
  assertStatus(post, 202, 'starting an upload session');
  const loc = post.header('location');
  assert.ok(loc, `${post.describe()}: 202 without a Location header`);
  const min = Number(post.header('oci-chunk-min-length') ?? '0');
  return { location: c.resolve(loc), minChunk: Number.isFinite(min) ? min : 0, post };
}

function patchChunk(location: string, data: Buffer, start: number): Promise<HttpResponse> {
  return c.patch(location, {
    headers: {
      'content-type': MT.octet,
      'content-range': `${start}-${start + data.length - 1}`,
      'content-length': data.length,
    },
    body: data,
  });
}

function closeUpload(location: string, digest: string, last?: { data: Buffer; start: number }): Promise<HttpResponse> {
  const headers: Record<string, string | number> = { 'content-type': MT.octet };
  if (last) headers['content-range'] = `${last.start}-${last.start + last.data.length - 1}`;
  return c.put(location, { query: { digest }, headers, body: last ? last.data : Buffer.alloc(0) });
}

/** Chunk size for 3-chunk uploads, honouring OCI-Chunk-Min-Length. */
function chunkSizeFor(s: Session): number {
  return Math.max(s.minChunk, 1024);
}

/** The next upload location: the Location of `res` (which MUST be present), resolved. */
function nextLocation(res: HttpResponse): string {
  const loc = res.header('location');
  assert.ok(loc, `${res.describe()}: missing Location header`);
  return c.resolve(loc);
}

/** After a 201 for a blob: Location must be pullable and serve `blob`. */
async function assertBlobCreated(res: HttpResponse, repo: string, blob: BlobData): Promise<void> {
  assertStatus(res, 201);
  const loc = res.header('location');
  assert.ok(loc, `${res.describe()}: 201 without Location`);
  const dcd = res.header('docker-content-digest');
  if (dcd !== undefined) assert.equal(dcd, blob.digest, 'Docker-Content-Digest on the 201');
  const viaLocation = await c.get(c.resolve(loc));
  assertStatus(viaLocation, 200, 'GET on the returned blob Location');
  assert.ok(viaLocation.body.equals(blob.data), 'blob served at Location differs from upload');
  const viaRepo = await c.get(`/v2/${repo}/blobs/${blob.digest}`);
  assertStatus(viaRepo, 200, 'GET on /v2/<name>/blobs/<digest>');
  assert.ok(viaRepo.body.equals(blob.data), 'blob served by digest differs from upload');
}

async function assertBlobAbsent(repo: string, digest: string): Promise<void> {
  const head = await c.head(`/v2/${repo}/blobs/${digest}`);
  assertStatus(head, 404, `blob ${digest} must not exist`);
}

async function pullManifest(repo: string, ref: string): Promise<HttpResponse> {
  return c.get(`/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT_ALL_MANIFESTS } });
}

/** After a manifest push: 201, Location pullable with the same bytes, Docker-Content-Digest equal to the digest. */
async function assertManifestCreated(res: HttpResponse, repo: string, m: ManifestData): Promise<void> {
  assertStatus(res, 201);
  assertDigestHeader(res, m.digest);
  const loc = res.header('location');
  assert.ok(loc, `${res.describe()}: 201 without Location`);
  const got = await c.get(c.resolve(loc), { headers: { accept: ACCEPT_ALL_MANIFESTS } });
  assertStatus(got, 200, 'GET on the manifest Location');
  assert.ok(got.body.equals(m.bytes), 'manifest served at Location differs from what was pushed');
  assert.equal(got.header('content-type'), m.mediaType, 'Content-Type of the pulled manifest');
}

/** GET by ref returns exactly `m`, with its media type and digest. */
async function assertManifestServed(repo: string, ref: string, m: ManifestData): Promise<void> {
  const res = await pullManifest(repo, ref);
  assertStatus(res, 200, `GET manifest ${ref}`);
  assert.ok(res.body.equals(m.bytes), `manifest ${ref}: bytes differ from what was pushed`);
  assert.equal(res.header('content-type'), m.mediaType, `manifest ${ref}: Content-Type`);
  assertContentLength(res, m.size);
  // by digest: the header is that digest; by tag: the canonical (sha256) digest, when the manifest was hashed with it
  if (ref.includes(':')) assertDigestHeader(res, ref);
  else if (m.digest.startsWith('sha256:')) assertDigestHeader(res, m.digest);
}

// ---------------------------------------------------------------------------------------------------------------

describe('monolithic upload: POST then PUT (end-4a, end-6)', () => {
  test('POST /v2/<name>/blobs/uploads/ answers 202 with a Location', async () => {
    const s = await startUpload(uniqueRepo('post'));
    assert.ok(s.location.length > 0);
  });

  test('two POSTs open two distinct upload sessions', async () => {
    const repo = uniqueRepo('post-twice');
    const a = await startUpload(repo);
    const b = await startUpload(repo);
    assert.notEqual(a.location, b.location, 'each session needs its own location');
  });

  test('PUT <location>?digest= with the whole blob answers 201; Location and digest URL serve the blob', async () => {
    const repo = uniqueRepo('post-put');
    const blob = randomBlob(3000);
    const s = await startUpload(repo);
    const put = await c.put(s.location, { query: { digest: blob.digest }, headers: { 'content-type': MT.octet }, body: blob.data });
    await assertBlobCreated(put, repo, blob);
  });

  test('after the closing PUT the session is gone: GET on it answers 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const repo = uniqueRepo('post-put-closed');
    const blob = randomBlob(100);
    const s = await startUpload(repo);
    assertStatus(await closeUpload(s.location, blob.digest, { data: blob.data, start: 0 }), 201);
    assertError(await c.get(s.location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('PUT with a digest that does not match answers 400 DIGEST_INVALID and no blob appears', async () => {
    const repo = uniqueRepo('post-put-bad-digest');
    const blob = randomBlob(1000);
    const claimed = randomBlob(1000).digest;
    const s = await startUpload(repo);
    const put = await c.put(s.location, { query: { digest: claimed }, headers: { 'content-type': MT.octet }, body: blob.data });
    assertError(put, 400, 'DIGEST_INVALID');
    await assertBlobAbsent(repo, claimed);
    await assertBlobAbsent(repo, blob.digest);
  });

  test('PUT with a malformed digest answers 400 DIGEST_INVALID', async () => {
    const repo = uniqueRepo('post-put-malformed');
    const s = await startUpload(repo);
    const put = await c.put(s.location, {
      query: { digest: 'sha256:not-a-hex-digest' },
      headers: { 'content-type': MT.octet },
      body: Buffer.from('hello'),
    });
    assertError(put, 400, 'DIGEST_INVALID');
  });

  test('PUT with an unsupported digest algorithm answers 400', async () => {
    const repo = uniqueRepo('post-put-md5');
    const s = await startUpload(repo);
    const put = await c.put(s.location, {
      query: { digest: 'md5:5d41402abc4b2a76b9719d911017c592' },
      headers: { 'content-type': MT.octet },
      body: Buffer.from('hello'),
    });
    assertError(put, 400, ['DIGEST_INVALID', 'UNSUPPORTED']);
  });

  test('PUT without the digest query parameter answers 400', async () => {
    const repo = uniqueRepo('post-put-no-digest');
    const s = await startUpload(repo);
    const put = await c.put(s.location, { headers: { 'content-type': MT.octet }, body: Buffer.from('hello') });
    assertError(put, 400);
  });
});

describe('single POST with ?digest= (end-4b)', () => {
  test('POST ?digest= with the blob answers 201 and the blob is pullable', async () => {
    const repo = uniqueRepo('post-only');
    const blob = randomBlob(2000);
    const res = await c.post(`/v2/${repo}/blobs/uploads/`, {
      query: { digest: blob.digest },
      headers: { 'content-type': MT.octet },
      body: blob.data,
    });
    await assertBlobCreated(res, repo, blob);
  });

  test('POST ?digest= with a mismatching body answers 400 DIGEST_INVALID and nothing is stored', async () => {
    const repo = uniqueRepo('post-only-bad');
    const blob = randomBlob(2000);
    const claimed = randomBlob(2000).digest;
    const res = await c.post(`/v2/${repo}/blobs/uploads/`, {
      query: { digest: claimed },
      headers: { 'content-type': MT.octet },
      body: blob.data,
    });
    assertError(res, 400, 'DIGEST_INVALID');
    await assertBlobAbsent(repo, claimed);
    await assertBlobAbsent(repo, blob.digest);
  });
});

describe('chunked upload (end-5, end-13)', () => {
  test('POST with Content-Length: 0 answers 202 with Location (OCI-Chunk-Min-Length, if sent, is a number)', async () => {
    const s = await startUpload(uniqueRepo('chunked-post'));
    const min = s.post.header('oci-chunk-min-length');
    if (min !== undefined) assert.match(min, /^\d+$/);
  });

  test('three PATCH chunks answer 202 with Location and Range 0-<end>; closing PUT answers 201', async () => {
    const repo = uniqueRepo('chunked');
    const s = await startUpload(repo);
    const size = chunkSizeFor(s);
    const blob = randomBlob(size * 3 - 5);
    let loc = s.location;
    for (let start = 0; start < blob.size; start += size) {
      const piece = blob.data.subarray(start, Math.min(start + size, blob.size));
      const res = await patchChunk(loc, piece, start);
      assertStatus(res, 202, `chunk ${start}`);
      assert.equal(rangeEnd(res), start + piece.length - 1, 'Range end after the chunk');
      loc = nextLocation(res);
    }
    await assertBlobCreated(await closeUpload(loc, blob.digest), repo, blob);
  });

  test('GET on the upload location answers 204 with Location and Range 0-<end>', async () => {
    const repo = uniqueRepo('chunked-status');
    const s = await startUpload(repo);
    const blob = randomBlob(chunkSizeFor(s) * 2);
    const first = blob.data.subarray(0, chunkSizeFor(s));
    const p = await patchChunk(s.location, first, 0);
    assertStatus(p, 202);
    const loc = nextLocation(p);
    const st = await c.get(loc);
    assertStatus(st, 204);
    assert.equal(st.body.length, 0);
    assert.ok(st.header('location'), 'status response needs a Location');
    assert.equal(rangeEnd(st), first.length - 1);
    // the status Location is a valid place to continue
    const p2 = await patchChunk(nextLocation(st), blob.data.subarray(first.length), first.length);
    assertStatus(p2, 202);
    await assertBlobCreated(await closeUpload(nextLocation(p2), blob.digest), repo, blob);
  });

  test('GET on a fresh upload location answers 204 with a Location', async () => {
    const s = await startUpload(uniqueRepo('chunked-status-empty'));
    const st = await c.get(s.location);
    assertStatus(st, 204);
    assert.ok(st.header('location'));
  });

  test('the final chunk may be sent in the closing PUT with Content-Range', async () => {
    const repo = uniqueRepo('chunked-put-last');
    const s = await startUpload(repo);
    const size = chunkSizeFor(s);
    const blob = randomBlob(size * 3 - 5);
    let loc = s.location;
    for (let start = 0; start < size * 2; start += size) {
      const res = await patchChunk(loc, blob.data.subarray(start, start + size), start);
      assertStatus(res, 202);
      loc = nextLocation(res);
    }
    const put = await closeUpload(loc, blob.digest, { data: blob.data.subarray(size * 2), start: size * 2 });
    await assertBlobCreated(put, repo, blob);
  });

  test('a first chunk that does not start at 0 answers 416', async () => {
    const repo = uniqueRepo('chunked-bad-first');
    const s = await startUpload(repo);
    const res = await patchChunk(s.location, randomBlob(chunkSizeFor(s)).data, 10);
    assertStatus(res, 416);
  });

  test('an out-of-order chunk answers 416 and the upload can resume from the last good offset', async () => {
    const repo = uniqueRepo('chunked-out-of-order');
    const s = await startUpload(repo);
    const size = chunkSizeFor(s);
    const blob = randomBlob(size * 3 - 5);
    const p1 = await patchChunk(s.location, blob.data.subarray(0, size), 0);
    assertStatus(p1, 202);
    const loc1 = nextLocation(p1);
    // skip the second chunk
    const bad = await patchChunk(loc1, blob.data.subarray(size * 2), size * 2);
    assertStatus(bad, 416, 'chunk starting past the current offset');
    // the session is still there and still at the end of chunk 1
    const st = await c.get(loc1);
    assertStatus(st, 204);
    assert.equal(rangeEnd(st), size - 1, 'offset after the rejected chunk');
    let loc = nextLocation(st);
    for (let start = size; start < blob.size; start += size) {
      const res = await patchChunk(loc, blob.data.subarray(start, Math.min(start + size, blob.size)), start);
      assertStatus(res, 202);
      loc = nextLocation(res);
    }
    await assertBlobCreated(await closeUpload(loc, blob.digest), repo, blob);
  });

  test('re-sending the previous chunk answers 416', async () => {
    const repo = uniqueRepo('chunked-retry');
    const s = await startUpload(repo);
    const size = chunkSizeFor(s);
    const blob = randomBlob(size * 2);
    const p1 = await patchChunk(s.location, blob.data.subarray(0, size), 0);
    assertStatus(p1, 202);
    const again = await patchChunk(nextLocation(p1), blob.data.subarray(0, size), 0);
    assertStatus(again, 416);
  });

  test('an out-of-order final chunk on the closing PUT answers 416', async () => {
    const repo = uniqueRepo('chunked-put-out-of-order');
    const s = await startUpload(repo);
    const size = chunkSizeFor(s);
    const blob = randomBlob(size * 3 - 5);
    const p1 = await patchChunk(s.location, blob.data.subarray(0, size), 0);
    assertStatus(p1, 202);
    const put = await closeUpload(nextLocation(p1), blob.digest, { data: blob.data.subarray(size * 2), start: size * 2 });
    assertStatus(put, 416);
    await assertBlobAbsent(repo, blob.digest);
  });

  test('a chunk whose Content-Range length disagrees with its body is refused (400 or 416)', async () => {
    const repo = uniqueRepo('chunked-range-mismatch');
    const s = await startUpload(repo);
    const data = randomBlob(500).data;
    const res = await c.patch(s.location, {
      headers: { 'content-type': MT.octet, 'content-range': '0-999', 'content-length': data.length },
      body: data,
    });
    assertStatus(res, [400, 416]);
    if (res.status === 400) assertErrorBody(res, ['SIZE_INVALID', 'BLOB_UPLOAD_INVALID', 'RANGE_INVALID']);
  });

  test('a closing PUT whose digest does not match the chunks answers 400 DIGEST_INVALID; no blob appears', async () => {
    const repo = uniqueRepo('chunked-bad-digest');
    const s = await startUpload(repo);
    const size = chunkSizeFor(s);
    const blob = randomBlob(size * 2);
    let loc = s.location;
    for (let start = 0; start < blob.size; start += size) {
      const res = await patchChunk(loc, blob.data.subarray(start, start + size), start);
      assertStatus(res, 202);
      loc = nextLocation(res);
    }
    const claimed = randomBlob(16).digest;
    assertError(await closeUpload(loc, claimed), 400, 'DIGEST_INVALID');
    await assertBlobAbsent(repo, claimed);
    await assertBlobAbsent(repo, blob.digest);
  });
});

describe('upload edge cases', () => {
  test('POST with an unsupported ?digest-algorithm= answers 400', async () => {
    const res = await c.post(`/v2/${uniqueRepo('digest-algo-bad')}/blobs/uploads/`, {
      query: { 'digest-algorithm': 'md5' },
      headers: { 'content-length': 0 },
    });
    assertError(res, 400, ['DIGEST_INVALID', 'UNSUPPORTED']);
  });

  test('data of an unfinished upload is not visible as a blob', async () => {
    const repo = uniqueRepo('upload-invisible');
    const blob = randomBlob(4000);
    const s = await startUpload(repo);
    const p = await c.patch(s.location, { headers: { 'content-type': MT.octet }, body: blob.data });
    assertStatus(p, 202);
    await assertBlobAbsent(repo, blob.digest);
    assertError(await c.get(`/v2/${repo}/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
  });

  test('two sessions uploading the same blob concurrently both complete with 201', async () => {
    const repo = uniqueRepo('upload-race');
    const blob = randomBlob(256 * 1024);
    const [a, b] = await Promise.all([startUpload(repo), startUpload(repo)]);
    const [ra, rb] = await Promise.all(
      [a, b].map((s) => c.put(s.location, { query: { digest: blob.digest }, headers: { 'content-type': MT.octet }, body: blob.data })),
    );
    await assertBlobCreated(ra!, repo, blob);
    await assertBlobCreated(rb!, repo, blob);
  });

  test('the same blob pushed to two repositories is served by both', async () => {
    const blob = randomBlob(5000);
    const r1 = uniqueRepo('dedupe-a');
    const r2 = uniqueRepo('dedupe-b');
    await pushBlob(c, r1, blob);
    await pushBlob(c, r2, blob);
    for (const r of [r1, r2]) {
      const res = await c.get(`/v2/${r}/blobs/${blob.digest}`);
      assertStatus(res, 200);
      assert.ok(res.body.equals(blob.data));
    }
  });

  test('a 16 MiB blob uploaded in 4 MiB chunks round-trips, and a Range in its middle is served', async () => {
    const repo = uniqueRepo('upload-large');
    const s = await startUpload(repo);
    const blob = randomBlob(16 * 1024 * 1024);
    const size = Math.max(s.minChunk, 4 * 1024 * 1024);
    let loc = s.location;
    for (let start = 0; start < blob.size; start += size) {
      const res = await patchChunk(loc, blob.data.subarray(start, Math.min(start + size, blob.size)), start);
      assertStatus(res, 202);
      loc = nextLocation(res);
    }
    const put = await closeUpload(loc, blob.digest);
    assertStatus(put, 201);
    const get = await c.get(`/v2/${repo}/blobs/${blob.digest}`);
    assertStatus(get, 200);
    assert.equal(digestOf(get.body), blob.digest);
    const mid = 7 * 1024 * 1024 + 123;
    const part = await c.get(`/v2/${repo}/blobs/${blob.digest}`, { headers: { range: `bytes=${mid}-${mid + 99_999}` } });
    assertStatus(part, 206);
    assert.ok(part.body.equals(blob.data.subarray(mid, mid + 100_000)));
  });
});

describe('streamed upload (PATCH without Content-Range)', () => {
  test('PATCH with chunked transfer encoding answers 202 with Range 0-<size-1>; PUT answers 201', async () => {
    const repo = uniqueRepo('stream');
    const blob = randomBlob(50_000);
    const s = await startUpload(repo);
    const p = await c.patch(s.location, { headers: { 'content-type': MT.octet }, body: streamOf(blob.data, 4096) });
    assertStatus(p, 202);
    assert.equal(rangeEnd(p), blob.size - 1);
    await assertBlobCreated(await closeUpload(nextLocation(p), blob.digest), repo, blob);
  });

  test('PATCH with Content-Length but no Content-Range answers 202; PUT answers 201', async () => {
    const repo = uniqueRepo('stream-length');
    const blob = randomBlob(20_000);
    const s = await startUpload(repo);
    const p = await c.patch(s.location, { headers: { 'content-type': MT.octet }, body: blob.data });
    assertStatus(p, 202);
    assert.equal(rangeEnd(p), blob.size - 1);
    await assertBlobCreated(await closeUpload(nextLocation(p), blob.digest), repo, blob);
  });

  test('a streamed upload closed with the wrong digest answers 400 DIGEST_INVALID', async () => {
    const repo = uniqueRepo('stream-bad-digest');
    const blob = randomBlob(10_000);
    const s = await startUpload(repo);
    const p = await c.patch(s.location, { headers: { 'content-type': MT.octet }, body: streamOf(blob.data) });
    assertStatus(p, 202);
    const claimed = randomBlob(16).digest;
    assertError(await closeUpload(nextLocation(p), claimed), 400, 'DIGEST_INVALID');
    await assertBlobAbsent(repo, claimed);
    await assertBlobAbsent(repo, blob.digest);
  });
});

describe('cancelling an upload (end-14)', () => {
  test('DELETE on the upload location answers 204; the session then answers 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const repo = uniqueRepo('cancel');
    const s = await startUpload(repo);
    const p = await patchChunk(s.location, randomBlob(chunkSizeFor(s)).data, 0);
    assertStatus(p, 202);
    const loc = nextLocation(p);
    const del = await c.delete(loc, { headers: { 'content-length': 0 } });
    assertStatus(del, 204);
    assertError(await c.get(loc), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('PATCH and PUT on a cancelled session answer 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const repo = uniqueRepo('cancel-then-write');
    const s = await startUpload(repo);
    assertStatus(await c.delete(s.location, { headers: { 'content-length': 0 } }), 204);
    const blob = randomBlob(100);
    assertError(await patchChunk(s.location, blob.data, 0), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await closeUpload(s.location, blob.digest, { data: blob.data, start: 0 }), 404, 'BLOB_UPLOAD_UNKNOWN');
    await assertBlobAbsent(repo, blob.digest);
  });

  test('GET on an upload id that never existed answers 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const repo = uniqueRepo('upload-unknown');
    await startUpload(repo); // the repository itself may exist
    const res = await c.get(`/v2/${repo}/blobs/uploads/0b2f6c1e-3a5e-4c56-9c1b-3f7a8d9e0f11`);
    assertError(res, 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('DELETE on an upload id that never existed answers 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const repo = uniqueRepo('upload-unknown-delete');
    await startUpload(repo);
    const res = await c.delete(`/v2/${repo}/blobs/uploads/0b2f6c1e-3a5e-4c56-9c1b-3f7a8d9e0f12`);
    assertError(res, 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('an upload session belongs to its repository', async (t) => {
    const repo = uniqueRepo('upload-owner');
    const other = uniqueRepo('upload-thief');
    await startUpload(other);
    const s = await startUpload(repo);
    const path = new URL(s.location).pathname;
    if (!path.startsWith(`/v2/${repo}/blobs/uploads/`)) {
      t.skip(`upload location ${path} is not under /v2/<name>/blobs/uploads/; cannot transplant it`);
      return;
    }
    const stolen = path.replace(`/v2/${repo}/`, `/v2/${other}/`) + new URL(s.location).search;
    assertError(await c.get(stolen), 404, 'BLOB_UPLOAD_UNKNOWN');
  });
});

describe('cross-repository blob mount (end-11)', () => {
  test('mount with from answers 201 with a pullable Location; the blob is in both repositories', async () => {
    const src = uniqueRepo('mount-src');
    const dst = uniqueRepo('mount-dst');
    const blob = randomBlob(1500);
    await pushBlob(c, src, blob);
    const res = await c.post(`/v2/${dst}/blobs/uploads/`, {
      query: { mount: blob.digest, from: src },
      headers: { 'content-length': 0 },
    });
    await assertBlobCreated(res, dst, blob);
    const still = await c.get(`/v2/${src}/blobs/${blob.digest}`);
    assertStatus(still, 200);
  });

  test('the Location of a successful mount points at the target repository', async () => {
    const src = uniqueRepo('mount-loc-src');
    const dst = uniqueRepo('mount-loc-dst');
    const blob = randomBlob(300);
    await pushBlob(c, src, blob);
    const res = await c.post(`/v2/${dst}/blobs/uploads/`, { query: { mount: blob.digest, from: src }, headers: { 'content-length': 0 } });
    assertStatus(res, 201);
    const loc = new URL(c.resolve(res.header('location') ?? ''));
    assert.equal(loc.pathname, `/v2/${dst}/blobs/${blob.digest}`);
  });

  test('anonymous mount (no from) answers 201 with the blob mounted, or 202 with a usable upload session', async () => {
    const src = uniqueRepo('mount-anon-src');
    const dst = uniqueRepo('mount-anon-dst');
    const blob = randomBlob(700);
    await pushBlob(c, src, blob);
    const res = await c.post(`/v2/${dst}/blobs/uploads/`, { query: { mount: blob.digest }, headers: { 'content-length': 0 } });
    assertStatus(res, [201, 202]);
    if (res.status === 201) {
      await assertBlobCreated(res, dst, blob);
    } else {
      const put = await closeUpload(nextLocation(res), blob.digest, { data: blob.data, start: 0 });
      await assertBlobCreated(put, dst, blob);
    }
  });

  test('mount of a blob that exists nowhere answers 202 with an upload session that accepts the blob', async () => {
    const src = uniqueRepo('mount-missing-src');
    const dst = uniqueRepo('mount-missing-dst');
    await pushBlob(c, src, randomBlob(10)); // source repository exists, the blob does not
    const blob = randomBlob(900);
    const res = await c.post(`/v2/${dst}/blobs/uploads/`, { query: { mount: blob.digest, from: src }, headers: { 'content-length': 0 } });
    assertStatus(res, 202);
    await assertBlobAbsent(dst, blob.digest);
    const put = await closeUpload(nextLocation(res), blob.digest, { data: blob.data, start: 0 });
    await assertBlobCreated(put, dst, blob);
  });
});

describe('sha512 digests', () => {
  test('POST then PUT with a sha512 digest answers 201; HEAD/GET by that digest work', async () => {
    const repo = uniqueRepo('sha512-post-put');
    const blob = randomBlob(2048, 'sha512');
    const s = await startUpload(repo);
    const put = await c.put(s.location, { query: { digest: blob.digest }, headers: { 'content-type': MT.octet }, body: blob.data });
    await assertBlobCreated(put, repo, blob);
    const head = await c.head(`/v2/${repo}/blobs/${blob.digest}`);
    assertStatus(head, 200);
    assertContentLength(head, blob.size);
    assertDigestHeader(head, blob.digest);
  });

  test('single POST with a sha512 digest answers 201', async () => {
    const repo = uniqueRepo('sha512-post-only');
    const blob = randomBlob(1024, 'sha512');
    const res = await c.post(`/v2/${repo}/blobs/uploads/`, {
      query: { digest: blob.digest },
      headers: { 'content-type': MT.octet },
      body: blob.data,
    });
    await assertBlobCreated(res, repo, blob);
  });

  test('chunked upload opened with ?digest-algorithm=sha512 (end-4c) completes with a sha512 digest', async () => {
    const repo = uniqueRepo('sha512-chunked');
    const s = await startUpload(repo, { 'digest-algorithm': 'sha512' });
    const size = chunkSizeFor(s);
    const blob = randomBlob(size * 2 + 7, 'sha512');
    let loc = s.location;
    for (let start = 0; start < blob.size; start += size) {
      const res = await patchChunk(loc, blob.data.subarray(start, Math.min(start + size, blob.size)), start);
      assertStatus(res, 202);
      loc = nextLocation(res);
    }
    await assertBlobCreated(await closeUpload(loc, blob.digest), repo, blob);
  });

  test('GET of a sha512 blob sends Docker-Content-Digest with the sha512 digest', async () => {
    const repo = uniqueRepo('sha512-get');
    const blob = randomBlob(512, 'sha512');
    await pushBlob(c, repo, blob);
    const res = await c.get(`/v2/${repo}/blobs/${blob.digest}`);
    assertStatus(res, 200);
    assertDigestHeader(res, blob.digest);
    assert.equal(digestOf(res.body, 'sha512'), blob.digest);
  });

  test('a sha512 PUT with a mismatching body answers 400 DIGEST_INVALID', async () => {
    const repo = uniqueRepo('sha512-bad');
    const s = await startUpload(repo);
    const claimed = randomBlob(64, 'sha512').digest;
    const put = await c.put(s.location, { query: { digest: claimed }, headers: { 'content-type': MT.octet }, body: randomBlob(64).data });
    assertError(put, 400, 'DIGEST_INVALID');
    await assertBlobAbsent(repo, claimed);
  });

  test('an image whose blobs and manifest use sha512 is pushed by its sha512 digest and pulled back', async () => {
    const repo = uniqueRepo('sha512-image');
    const img = buildImage({ algo: 'sha512' });
    assert.ok(img.manifest.digest.startsWith('sha512:'));
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, img.manifest.digest, img.manifest);
    await assertManifestCreated(res, repo, img.manifest);
    const get = await pullManifest(repo, img.manifest.digest);
    assertStatus(get, 200);
    assert.ok(get.body.equals(img.manifest.bytes));
    assertDigestHeader(get, img.manifest.digest);
    const head = await c.head(`/v2/${repo}/manifests/${img.manifest.digest}`, { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assertStatus(head, 200);
    assertDigestHeader(head, img.manifest.digest);
  });

  test('a sha256 image manifest pushed by its sha512 digest keeps the sha512 digest', async () => {
    const repo = uniqueRepo('sha512-manifest');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const m = manifestOf(img.manifest.bytes.toString('utf8'), MT.ociManifest, 'sha512');
    const res = await pushManifest(c, repo, m.digest, m);
    await assertManifestCreated(res, repo, m);
  });

  test('a sha512 index pushed by digest with ?tag= resolves by tag and by digest', async () => {
    const repo = uniqueRepo('sha512-index');
    const a = buildImage({ algo: 'sha512', platform: { os: 'linux', architecture: 'amd64' } });
    const b = buildImage({ algo: 'sha512', platform: { os: 'linux', architecture: 'arm64' } });
    for (const img of [a, b]) {
      await pushBlobs(c, repo, img.blobs);
      await pushManifest(c, repo, img.manifest.digest, img.manifest);
    }
    const idx = buildIndex(
      [
        { manifest: a.manifest, platform: { os: 'linux', architecture: 'amd64' } },
        { manifest: b.manifest, platform: { os: 'linux', architecture: 'arm64' } },
      ],
      { algo: 'sha512' },
    );
    const tag = uniqueTag('sha512');
    const res = await pushManifest(c, repo, idx.digest, idx, { query: { tag } });
    await assertManifestCreated(res, repo, idx);
    const byTag = await pullManifest(repo, tag);
    assertStatus(byTag, 200);
    assert.ok(byTag.body.equals(idx.bytes));
  });
});

describe('pushing manifests (end-7a)', () => {
  test('PUT by tag answers 201 with a pullable Location and Docker-Content-Digest', async () => {
    const repo = uniqueRepo('manifest-tag');
    const img = buildImage({ layers: 2 });
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, 'latest', img.manifest);
    await assertManifestCreated(res, repo, img.manifest);
    await assertManifestServed(repo, 'latest', img.manifest);
  });

  test('PUT by digest answers 201 with a pullable Location and Docker-Content-Digest', async () => {
    const repo = uniqueRepo('manifest-digest');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, img.manifest.digest, img.manifest);
    await assertManifestCreated(res, repo, img.manifest);
    await assertManifestServed(repo, img.manifest.digest, img.manifest);
  });

  test('the exact bytes are stored: odd whitespace and key order survive, digest is over the bytes', async () => {
    const repo = uniqueRepo('manifest-bytes');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const cfg = img.config;
    const layer = img.layers[0]!;
    const text =
      `{\n   "schemaVersion" : 2,\n\t"config": {"size": ${cfg.size}, "digest": "${cfg.digest}", "mediaType": "${MT.ociConfig}"},\n` +
      `"mediaType":"${MT.ociManifest}",   "layers": [ {"digest":"${layer.digest}","mediaType":"${MT.ociLayerGzip}","size":${layer.size}} ]\n}\n\n`;
    const m = manifestOf(text, MT.ociManifest);
    const res = await pushManifest(c, repo, 'odd', m);
    await assertManifestCreated(res, repo, m);
    const get = await pullManifest(repo, m.digest);
    assertStatus(get, 200);
    assert.equal(get.text(), text);
  });

  test('PUT by digest with a body that does not hash to it answers 400 DIGEST_INVALID', async () => {
    const repo = uniqueRepo('manifest-bad-digest');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const tampered = Buffer.concat([img.manifest.bytes, Buffer.from('  ')]);
    const res = await c.put(`/v2/${repo}/manifests/${img.manifest.digest}`, {
      headers: { 'content-type': MT.ociManifest },
      body: tampered,
    });
    assertError(res, 400, 'DIGEST_INVALID');
    assertStatus(await c.head(`/v2/${repo}/manifests/${img.manifest.digest}`, { headers: { accept: ACCEPT_ALL_MANIFESTS } }), 404);
  });

  test('PUT to a malformed digest reference (sha256:baddigeststring) answers 400', async () => {
    const repo = uniqueRepo('manifest-malformed-ref');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, 'sha256:baddigeststring', img.manifest, { expectStatus: null });
    assertError(res, 400);
  });

  test('a manifest referencing a missing layer answers 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('manifest-missing-layer');
    const img = buildImage({ layers: 2 });
    await pushBlobs(c, repo, [img.config, img.layers[0]!]); // layer 1 never uploaded
    const res = await pushManifest(c, repo, 'latest', img.manifest, { expectStatus: null });
    assertError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
    assertStatus(await c.head(`/v2/${repo}/manifests/latest`, { headers: { accept: ACCEPT_ALL_MANIFESTS } }), 404);
  });

  test('a manifest referencing a missing config answers 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('manifest-missing-config');
    const img = buildImage();
    await pushBlobs(c, repo, img.layers);
    const res = await pushManifest(c, repo, 'latest', img.manifest, { expectStatus: null });
    assertError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('a manifest referencing a blob that only exists in another repository answers 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('manifest-foreign-blob');
    const other = uniqueRepo('manifest-foreign-owner');
    const img = buildImage();
    await pushBlob(c, repo, img.config);
    await pushBlobs(c, other, img.layers);
    const res = await pushManifest(c, repo, 'latest', img.manifest, { expectStatus: null });
    assertError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('invalid JSON answers 400 MANIFEST_INVALID', async () => {
    const repo = uniqueRepo('manifest-invalid-json');
    await pushBlob(c, repo, randomBlob(10)); // make sure the repository exists
    const res = await c.put(`/v2/${repo}/manifests/latest`, {
      headers: { 'content-type': MT.ociManifest },
      body: '{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {',
    });
    assertError(res, 400, 'MANIFEST_INVALID');
  });

  test('JSON that is not a valid image manifest answers 400 MANIFEST_INVALID', async () => {
    const repo = uniqueRepo('manifest-invalid-shape');
    const cfg = imageConfig([]);
    await pushBlob(c, repo, cfg);
    const doc = { schemaVersion: 2, mediaType: MT.ociManifest, config: descriptor(cfg, MT.ociConfig), layers: 'not-a-list' };
    const res = await pushManifest(c, repo, 'latest', manifestOf(doc, MT.ociManifest), { expectStatus: null });
    assertError(res, 400, 'MANIFEST_INVALID');
  });

  test('a manifest whose mediaType field contradicts the Content-Type answers 400 MANIFEST_INVALID', async () => {
    const repo = uniqueRepo('manifest-type-mismatch');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, 'latest', img.manifest, { contentType: MT.ociIndex, expectStatus: null });
    assertError(res, 400, 'MANIFEST_INVALID');
  });

  test('parameters on the Content-Type of a manifest PUT are ignored; GET serves the bare media type', async () => {
    const repo = uniqueRepo('manifest-ctype-params');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, 'params', img.manifest, { contentType: `${MT.ociManifest}; charset=utf-8` });
    assertStatus(res, 201);
    assertDigestHeader(res, img.manifest.digest);
    await assertManifestServed(repo, 'params', img.manifest);
  });

  test('pushing to an existing tag moves it to the new manifest', async () => {
    const repo = uniqueRepo('manifest-retag');
    const one = await pushImage(c, repo, { ref: 'moving' });
    const two = await pushImage(c, repo, { ref: 'moving' });
    assert.notEqual(one.manifest.digest, two.manifest.digest);
    await assertManifestServed(repo, 'moving', two.manifest);
    await assertManifestServed(repo, one.manifest.digest, one.manifest);
  });

  test('pushing the same manifest twice answers 201 both times', async () => {
    const repo = uniqueRepo('manifest-idempotent');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    await assertManifestCreated(await pushManifest(c, repo, 'same', img.manifest), repo, img.manifest);
    await assertManifestCreated(await pushManifest(c, repo, 'same', img.manifest), repo, img.manifest);
  });

  test('a manifest of about 4 MB (400 annotations of 10,000 bytes) is accepted and returned byte for byte', async () => {
    const repo = uniqueRepo('manifest-large');
    const annotations: Record<string, string> = {};
    for (let i = 0; i < 400; i++) annotations[`org.example.conformance.large.${i}`] = 'x'.repeat(9_990) + String(i).padStart(10, '0');
    const img = buildImage({ annotations });
    assert.ok(img.manifest.size >= 4_000_000, `test manifest is only ${img.manifest.size} bytes`);
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, 'large', img.manifest);
    await assertManifestCreated(res, repo, img.manifest);
  });

  test('a 16 MiB manifest is refused with 413 Payload Too Large', async () => {
    const repo = uniqueRepo('manifest-too-large');
    const annotations: Record<string, string> = {};
    for (let i = 0; i < 1700; i++) annotations[`org.example.huge.${i}`] = 'y'.repeat(10_000);
    const img = buildImage({ annotations });
    assert.ok(img.manifest.size > 16 * 1024 * 1024);
    await pushBlobs(c, repo, img.blobs);
    let res: HttpResponse;
    try {
      res = await pushManifest(c, repo, 'huge', img.manifest, { expectStatus: null });
    } catch (err) {
      throw new assert.AssertionError({ message: `registry dropped the connection instead of answering 413: ${(err as Error).message}` });
    }
    assertStatus(res, 413);
  });

  test('an image manifest with an empty layer list is accepted', async () => {
    const repo = uniqueRepo('manifest-no-layers');
    const img = buildImage({ layerBlobs: [] });
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, 'no-layers', img.manifest);
    await assertManifestCreated(res, repo, img.manifest);
  });

  test('unknown (custom) fields in a manifest are accepted and preserved', async () => {
    const repo = uniqueRepo('manifest-custom-fields');
    const img = buildImage({ extra: { 'org.example.custom': { nested: [1, 2, 3] }, zzz: 'last' } });
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, 'custom', img.manifest);
    await assertManifestCreated(res, repo, img.manifest);
  });

  test('a descriptor with an embedded data field is accepted', async () => {
    const repo = uniqueRepo('manifest-data-field');
    const layer = randomBlob(64);
    const config = imageConfig([layer]);
    await pushBlobs(c, repo, [layer, config]);
    const doc = {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: descriptor(config, MT.ociConfig, { data: config.data.toString('base64') }),
      layers: [descriptor(layer, MT.ociLayerGzip, { data: layer.data.toString('base64') })],
    };
    const m = manifestOf(doc, MT.ociManifest);
    await assertManifestCreated(await pushManifest(c, repo, 'data-field', m), repo, m);
  });

  test('non-distributable layers with urls, never uploaded, are accepted', async () => {
    const repo = uniqueRepo('manifest-nondistributable');
    const foreign = randomBlob(256);
    const layer = randomBlob(128);
    const config = imageConfig([foreign, layer]);
    await pushBlobs(c, repo, [layer, config]);
    const doc = {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: descriptor(config, MT.ociConfig),
      layers: [
        descriptor(foreign, MT.ociLayerNondistGzip, {
          size: 123456,
          urls: [`https://store.example.com/blobs/sha256/${foreign.digest.slice(7)}`],
        }),
        descriptor(layer, MT.ociLayerGzip),
      ],
    };
    const m = manifestOf(doc, MT.ociManifest);
    await assertManifestCreated(await pushManifest(c, repo, 'nondist', m), repo, m);
  });
});

describe('manifest types: indexes, Docker, artifacts, Helm', () => {
  test('an OCI image index over two platform images is accepted and served as an index', async () => {
    const repo = uniqueRepo('index');
    const amd = await pushImage(c, repo, { platform: { os: 'linux', architecture: 'amd64' } });
    const arm = await pushImage(c, repo, { platform: { os: 'linux', architecture: 'arm64' } });
    const idx = buildIndex([
      { manifest: amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
      { manifest: arm.manifest, platform: { os: 'linux', architecture: 'arm64' } },
    ]);
    const res = await pushManifest(c, repo, 'multi', idx);
    await assertManifestCreated(res, repo, idx);
    await assertManifestServed(repo, 'multi', idx);
    await assertManifestServed(repo, amd.manifest.digest, amd.manifest);
  });

  test('a nested index (index of indexes) is accepted', async () => {
    const repo = uniqueRepo('index-nested');
    const children: ManifestData[] = [];
    for (const arch of ['amd64', 'arm64']) {
      const img = await pushImage(c, repo, { platform: { os: 'linux', architecture: arch } });
      const inner = buildIndex([{ manifest: img.manifest, platform: { os: 'linux', architecture: arch } }]);
      await pushManifest(c, repo, inner.digest, inner);
      children.push(inner);
    }
    const outer = buildIndex(children.map((m) => ({ manifest: m })));
    const res = await pushManifest(c, repo, 'index-of-index', outer);
    await assertManifestCreated(res, repo, outer);
  });

  test('an empty index (no manifests) is accepted', async () => {
    const repo = uniqueRepo('index-empty');
    const idx = buildIndex([]);
    const res = await pushManifest(c, repo, 'empty', idx);
    await assertManifestCreated(res, repo, idx);
  });

  test('an index referencing a missing manifest is either accepted or refused with MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('index-sparse');
    const present = await pushImage(c, repo, {});
    const absent = buildImage();
    const idx = buildIndex([{ manifest: present.manifest }, { manifest: absent.manifest }]);
    const res = await pushManifest(c, repo, 'sparse', idx, { expectStatus: null });
    assertStatus(res, [201, 400]);
    if (res.status === 400) assertErrorBody(res, 'MANIFEST_BLOB_UNKNOWN');
    else await assertManifestServed(repo, 'sparse', idx);
  });

  test('a Docker schema2 image manifest is accepted and served with its media type', async () => {
    const repo = uniqueRepo('docker-v2');
    const layer = randomBlob(300);
    const config = imageConfig([layer]);
    await pushBlobs(c, repo, [layer, config]);
    const m = manifestOf(
      {
        schemaVersion: 2,
        mediaType: MT.dockerManifest,
        config: descriptor(config, MT.dockerConfig),
        layers: [descriptor(layer, MT.dockerLayerGzip)],
      },
      MT.dockerManifest,
    );
    await assertManifestCreated(await pushManifest(c, repo, 'docker', m), repo, m);
    const res = await c.get(`/v2/${repo}/manifests/docker`, { headers: { accept: MT.dockerManifest } });
    assertStatus(res, 200);
    assert.equal(res.header('content-type'), MT.dockerManifest);
    assertDigestHeader(res, m.digest);
  });

  test('a Docker manifest list is accepted and served with its media type', async () => {
    const repo = uniqueRepo('docker-list');
    const children: Array<{ m: ManifestData; arch: string }> = [];
    for (const arch of ['amd64', 'arm64']) {
      const layer = randomBlob(200);
      const config = imageConfig([layer], { os: 'linux', architecture: arch });
      await pushBlobs(c, repo, [layer, config]);
      const m = manifestOf(
        { schemaVersion: 2, mediaType: MT.dockerManifest, config: descriptor(config, MT.dockerConfig), layers: [descriptor(layer, MT.dockerLayerGzip)] },
        MT.dockerManifest,
      );
      await pushManifest(c, repo, m.digest, m);
      children.push({ m, arch });
    }
    const list = manifestOf(
      {
        schemaVersion: 2,
        mediaType: MT.dockerManifestList,
        manifests: children.map(({ m, arch }) => manifestDescriptor(m, { platform: { os: 'linux', architecture: arch } })),
      },
      MT.dockerManifestList,
    );
    await assertManifestCreated(await pushManifest(c, repo, 'list', list), repo, list);
    const res = await c.get(`/v2/${repo}/manifests/list`, { headers: { accept: MT.dockerManifestList } });
    assertStatus(res, 200);
    assert.equal(res.header('content-type'), MT.dockerManifestList);
  });

  test('an artifact manifest (artifactType, empty {} config) is accepted and keeps its artifactType', async () => {
    const repo = uniqueRepo('artifact');
    const art = buildArtifact({ artifactType: 'application/vnd.example.sbom.v1+json', layerMediaType: 'application/vnd.example.sbom.v1+json' });
    assert.equal(art.config.digest, EMPTY_JSON_DIGEST);
    assert.equal(art.config.size, 2);
    await pushBlobs(c, repo, art.blobs);
    const res = await pushManifest(c, repo, 'sbom', art.manifest);
    await assertManifestCreated(res, repo, art.manifest);
    const got = await pullManifest(repo, 'sbom');
    assert.equal(got.json().artifactType, 'application/vnd.example.sbom.v1+json');
    assert.equal(got.json().config.mediaType, MT.ociEmpty);
    const cfg = await c.get(`/v2/${repo}/blobs/${EMPTY_JSON_DIGEST}`);
    assertStatus(cfg, 200);
    assert.equal(cfg.text(), '{}');
  });

  test('an artifact whose only layer is the empty descriptor is accepted', async () => {
    const repo = uniqueRepo('artifact-empty-layer');
    const art = buildImage({
      artifactType: 'application/vnd.example.marker.v1',
      config: EMPTY_JSON_BLOB,
      configMediaType: MT.ociEmpty,
      layerBlobs: [EMPTY_JSON_BLOB],
      layerMediaType: MT.ociEmpty,
      annotations: { 'org.example.note': 'no payload' },
    });
    await pushBlobs(c, repo, art.blobs);
    await assertManifestCreated(await pushManifest(c, repo, 'marker', art.manifest), repo, art.manifest);
  });

  test('an artifact index (index with artifactType) is accepted', async () => {
    const repo = uniqueRepo('artifact-index');
    const a = await pushArtifact(c, repo, { artifactType: 'application/vnd.example.part.v1' });
    const idx = buildIndex([{ manifest: a.manifest }], { artifactType: 'application/vnd.example.bundle.v1' });
    await assertManifestCreated(await pushManifest(c, repo, 'bundle', idx), repo, idx);
    assert.equal((await pullManifest(repo, 'bundle')).json().artifactType, 'application/vnd.example.bundle.v1');
  });

  test('a Helm chart (helm config + chart tgz + provenance) is accepted under a semver tag', async () => {
    const repo = uniqueRepo('helm/mychart');
    const config = blobOf(JSON.stringify({ name: 'mychart', version: '0.1.0', apiVersion: 'v2', description: 'A Helm chart', type: 'application' }));
    const chart = blobOf(gzipSync(Buffer.concat([Buffer.from('mychart/Chart.yaml\n'), randomBlob(512).data])));
    const prov = blobOf('-----BEGIN PGP SIGNED MESSAGE-----\nname: mychart\n-----END PGP SIGNATURE-----\n');
    await pushBlobs(c, repo, [config, chart, prov]);
    const m = manifestOf(
      {
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        config: descriptor(config, MT.helmConfig),
        layers: [descriptor(chart, MT.helmChart), descriptor(prov, MT.helmProvenance)],
        annotations: { 'org.opencontainers.image.title': 'mychart', 'org.opencontainers.image.version': '0.1.0' },
      },
      MT.ociManifest,
    );
    await assertManifestCreated(await pushManifest(c, repo, '0.1.0', m), repo, m);
    await assertManifestServed(repo, '0.1.0', m);
    const layer = await c.get(`/v2/${repo}/blobs/${chart.digest}`);
    assertStatus(layer, 200);
    assert.ok(layer.body.equals(chart.data));
  });

  test('a manifest without a mediaType field (as older Helm/ORAS push) is accepted with the Content-Type sent', async () => {
    const repo = uniqueRepo('helm-no-mediatype');
    const config = blobOf(JSON.stringify({ name: 'old', version: '1.0.0', apiVersion: 'v2' }));
    const chart = blobOf(gzipSync(randomBlob(256).data));
    await pushBlobs(c, repo, [config, chart]);
    const m = manifestOf(
      { schemaVersion: 2, config: descriptor(config, MT.helmConfig), layers: [descriptor(chart, MT.helmChart)] },
      MT.ociManifest,
    );
    await assertManifestCreated(await pushManifest(c, repo, '1.0.0', m), repo, m);
  });
});

describe('tag query parameter on PUT by digest (end-7b)', () => {
  test('PUT by digest with ?tag=a&tag=b creates both tags', async () => {
    const repo = uniqueRepo('tag-param');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const res = await pushManifest(c, repo, img.manifest.digest, img.manifest, { query: { tag: ['v1.2.3', 'latest'] } });
    await assertManifestCreated(res, repo, img.manifest);
    for (const t of ['v1.2.3', 'latest']) {
      const g = await pullManifest(repo, t);
      assertStatus(g, 200, `tag ${t}`);
      assertDigestHeader(g, img.manifest.digest);
    }
  });

  test('each accepted tag is listed in an OCI-Tag response header', async () => {
    const repo = uniqueRepo('tag-param-header');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const tags = ['1.2.3', '1.2', '1', 'latest'];
    const res = await pushManifest(c, repo, img.manifest.digest, img.manifest, { query: { tag: tags } });
    assertStatus(res, 201);
    const announced = res.headerValues('oci-tag').flatMap((v) => v.split(',').map((s) => s.trim()));
    for (const t of tags) assert.ok(announced.includes(t), `OCI-Tag headers ${JSON.stringify(res.headerValues('oci-tag'))} lack ${t}`);
  });

  test('at least ten tags can be pushed in one request', async () => {
    const repo = uniqueRepo('tag-param-ten');
    const img = buildImage();
    await pushBlobs(c, repo, img.blobs);
    const tags = Array.from({ length: 10 }, (_, i) => `t${i}`);
    const res = await pushManifest(c, repo, img.manifest.digest, img.manifest, { query: { tag: tags } });
    assertStatus(res, 201);
    const list = await c.get(`/v2/${repo}/tags/list`);
    assertStatus(list, 200);
    const got: string[] = list.json().tags ?? [];
    for (const t of tags) assert.ok(got.includes(t), `tag ${t} missing from the tag list ${JSON.stringify(got)}`);
  });
});

describe('manifests with a subject (OCI-Subject)', () => {
  test('a manifest with a subject answers 201 with OCI-Subject: <subject digest>', async () => {
    const repo = uniqueRepo('subject');
    const subject = await pushImage(c, repo, { ref: 'base' });
    const art = await pushArtifact(c, repo, {
      artifactType: 'application/vnd.example.signature.v1',
      subject: manifestDescriptor(subject.manifest),
    });
    assertStatus(art.response, 201);
    assert.equal(art.response.header('oci-subject'), subject.manifest.digest);
    assertDigestHeader(art.response, art.manifest.digest);
  });

  test('a referrer pushed before its subject exists is accepted (201, OCI-Subject)', async () => {
    const repo = uniqueRepo('subject-missing');
    const future = buildImage();
    const art = await pushArtifact(c, repo, {
      artifactType: 'application/vnd.example.sbom.v1',
      subject: manifestDescriptor(future.manifest),
    });
    assertStatus(art.response, 201);
    assert.equal(art.response.header('oci-subject'), future.manifest.digest);
    await assertManifestServed(repo, art.manifest.digest, art.manifest);
    // the subject can be pushed afterwards
    await pushBlobs(c, repo, future.blobs);
    await pushManifest(c, repo, future.manifest.digest, future.manifest);
  });

  test('an index with a subject answers 201 with OCI-Subject', async () => {
    const repo = uniqueRepo('subject-index');
    const subject = await pushImage(c, repo, { ref: 'base' });
    const child = await pushArtifact(c, repo, { artifactType: 'application/vnd.example.part.v1' });
    const idx = buildIndex([{ manifest: child.manifest }], {
      artifactType: 'application/vnd.example.bundle.v1',
      subject: manifestDescriptor(subject.manifest),
    });
    const res = await pushManifest(c, repo, idx.digest, idx);
    assertStatus(res, 201);
    assert.equal(res.header('oci-subject'), subject.manifest.digest);
  });

  test('a manifest without a subject does not get an OCI-Subject header', async () => {
    const repo = uniqueRepo('subject-none');
    const img = await pushImage(c, repo, { ref: 'plain' });
    assert.equal(img.response.header('oci-subject'), undefined);
  });
});
