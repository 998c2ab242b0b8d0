// OCI Distribution Spec v1.1 conformance: error responses and input validation.
// - 4xx bodies, when JSON, MUST be {"errors":[{"code","message","detail"?}]} with a spec code.
// - <name> MUST match [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
// - tags MUST match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
// A registry must refuse what does not match (400 NAME_INVALID, or 404) and never answer 5xx.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCEPT_ALL_MANIFESTS,
  MT,
  assertError,
  assertErrorBody,
  assertErrorBodyIfJson,
  assertStatus,
  buildImage,
  pushBlob,
  pushBlobs,
  pushImage,
  pushManifest,
  randomBlob,
  registryPerFile,
  uniqueRepo,
  type HttpResponse,
  type RegistryClient,
  type TestRegistry,
} from '../support/oci-http.js';

let reg: TestRegistry;
let c: RegistryClient;
registryPerFile((r) => {
  reg = r;
  c = r.client;
});

/** 400 must carry NAME_INVALID; 404 is acceptable (route does not match); anything else fails. */
function assertNameRefused(res: HttpResponse): void {
  assertStatus(res, [400, 404], 'invalid repository name');
  if (res.status === 400) assertErrorBody(res, 'NAME_INVALID');
  else assertErrorBodyIfJson(res);
}

describe('error body format', () => {
  test('BLOB_UNKNOWN body has errors[].code and a string message', async () => {
    const repo = uniqueRepo('err-blob');
    await pushBlob(c, repo, randomBlob(8));
    const res = await c.get(`/v2/${repo}/blobs/${randomBlob(8).digest}`);
    const body = assertError(res, 404, 'BLOB_UNKNOWN')!;
    for (const e of body.errors) assert.equal(typeof e.message, 'string');
  });

  test('MANIFEST_UNKNOWN body is well formed', async () => {
    const repo = uniqueRepo('err-manifest');
    await pushImage(c, repo, { ref: 'x' });
    assertError(await c.get(`/v2/${repo}/manifests/nope`, { headers: { accept: ACCEPT_ALL_MANIFESTS } }), 404, 'MANIFEST_UNKNOWN');
  });

  test('NAME_UNKNOWN body is well formed', async () => {
    assertError(await c.get(`/v2/${uniqueRepo('err-name-unknown')}/tags/list`), 404, 'NAME_UNKNOWN');
  });

  test('DIGEST_INVALID body is well formed', async () => {
    const repo = uniqueRepo('err-digest');
    const post = await c.post(`/v2/${repo}/blobs/uploads/`, { headers: { 'content-length': 0 } });
    assertStatus(post, 202);
    const put = await c.put(c.resolve(post.header('location')!), {
      query: { digest: randomBlob(4).digest },
      headers: { 'content-type': MT.octet },
      body: 'abcd',
    });
    assertError(put, 400, 'DIGEST_INVALID');
  });

  test('BLOB_UPLOAD_UNKNOWN body is well formed', async () => {
    const repo = uniqueRepo('err-upload');
    await pushBlob(c, repo, randomBlob(8));
    assertError(await c.get(`/v2/${repo}/blobs/uploads/does-not-exist-0000`), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('MANIFEST_INVALID and MANIFEST_BLOB_UNKNOWN bodies are well formed', async () => {
    const repo = uniqueRepo('err-manifest-put');
    const img = buildImage();
    await pushBlob(c, repo, img.config);
    assertError(await pushManifest(c, repo, 'x', img.manifest, { expectStatus: null }), 400, 'MANIFEST_BLOB_UNKNOWN');
    const bad = await c.put(`/v2/${repo}/manifests/x`, { headers: { 'content-type': MT.ociManifest }, body: 'not json' });
    assertError(bad, 400, 'MANIFEST_INVALID');
  });

  test('error responses are served as JSON (Content-Type application/json)', async () => {
    const res = await c.get(`/v2/${uniqueRepo('err-ctype')}/manifests/latest`, { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assertStatus(res, 404);
    assert.match(res.header('content-type') ?? '', /^application\/json\b/);
    assertErrorBody(res);
  });
});

describe('invalid repository names', () => {
  // raw request paths: the client sends these bytes as they are (no ".." folding, no re-encoding)
  const BAD_NAMES: Array<[string, string]> = [
    ['upper case', 'conformance/UpperCase'],
    ['dot-dot component', 'conformance/../etc'],
    ['leading dot-dot', '../conformance'],
    ['dot component', 'conformance/./x'],
    ['encoded slash %2F', 'conformance%2Fencoded'],
    ['encoded dot-dot %2E%2E', 'conformance/%2E%2E/x'],
    ['empty component', 'conformance//x'],
    ['leading separator', '-conformance/x'],
    ['trailing separator', 'conformance/x-'],
    ['double dot inside', 'conformance/a..b'],
    ['triple underscore', 'conformance/a___b'],
    ['space', 'conformance/a%20b'],
    ['backslash', 'conformance/a%5Cb'],
  ];

  const ENDPOINTS: Array<[string, (name: string) => Promise<HttpResponse>]> = [
    ['GET tags/list', (n) => c.get(`/v2/${n}/tags/list`)],
    ['GET manifest', (n) => c.get(`/v2/${n}/manifests/latest`, { headers: { accept: ACCEPT_ALL_MANIFESTS } })],
    ['PUT manifest', async (n) => {
      const img = buildImage();
      return c.put(`/v2/${n}/manifests/latest`, { headers: { 'content-type': MT.ociManifest }, body: img.manifest.bytes });
    }],
    ['GET blob', (n) => c.get(`/v2/${n}/blobs/${randomBlob(8).digest}`)],
    ['POST blob upload', (n) => c.post(`/v2/${n}/blobs/uploads/`, { headers: { 'content-length': 0 } })],
  ];

  for (const [label, name] of BAD_NAMES) {
    for (const [endpoint, call] of ENDPOINTS) {
      test(`${endpoint} with ${label} (${name}) answers 400 NAME_INVALID or 404`, async () => {
        assertNameRefused(await call(name));
      });
    }
  }

  test('a repository name longer than 255 characters is refused on push', async () => {
    const name = `conformance/${'a'.repeat(300)}`;
    const res = await c.post(`/v2/${name}/blobs/uploads/`, { headers: { 'content-length': 0 } });
    assertNameRefused(res);
  });

  test('names that match the grammar are accepted (__, ---, ., deep paths)', async () => {
    const base = uniqueRepo('names');
    for (const suffix of ['a__b', 'a---b', 'a.b', 'a_b-c.d', 'x/y/z/w', '0']) {
      const name = `${base}/${suffix}`;
      const img = await pushImage(c, name, { ref: 'latest' });
      const res = await c.get(`/v2/${name}/manifests/latest`, { headers: { accept: ACCEPT_ALL_MANIFESTS } });
      assertStatus(res, 200, name);
      assert.ok(res.body.equals(img.manifest.bytes));
    }
  });
});

describe('invalid tags and digests', () => {
  let repo: string;
  let img: ReturnType<typeof buildImage>;

  before(async () => {
    repo = uniqueRepo('bad-refs');
    img = buildImage();
    await pushBlobs(c, repo, img.blobs);
  });

  for (const [label, tag] of [
    ['129 characters', 'a'.repeat(129)],
    ['leading dash', '-tag'],
    ['leading dot', '.tag'],
    ['a plus sign', 'v1%2Bbuild'],
    ['a colon but no valid digest', 'foo:bar'],
  ] as const) {
    test(`PUT manifest with a tag containing ${label} is refused with 400 (or 404)`, async () => {
      const res = await pushManifest(c, repo, tag, img.manifest, { expectStatus: null });
      assertStatus(res, [400, 404]);
      if (res.status === 400) assertErrorBody(res);
      else assertErrorBodyIfJson(res);
    });
  }

  test('tags at the limits of the grammar are accepted (128 characters, leading _, upper case, dots)', async () => {
    for (const tag of ['b'.repeat(128), '_private', 'UPPER.case-Tag_1', '0']) {
      const res = await pushManifest(c, repo, tag, img.manifest);
      assertStatus(res, 201, tag);
      assertStatus(await c.head(`/v2/${repo}/manifests/${tag}`, { headers: { accept: ACCEPT_ALL_MANIFESTS } }), 200, tag);
    }
  });

  test('GET blob with a malformed digest answers 400 DIGEST_INVALID or 404', async () => {
    const res = await c.get(`/v2/${repo}/blobs/sha256:xyz`);
    assertStatus(res, [400, 404]);
    if (res.status === 400) assertErrorBody(res, 'DIGEST_INVALID');
    else assertErrorBodyIfJson(res);
  });

  test('GET blob with an unsupported algorithm answers 400 or 404', async () => {
    const res = await c.get(`/v2/${repo}/blobs/md5:5d41402abc4b2a76b9719d911017c592`);
    assertStatus(res, [400, 404]);
    assertErrorBodyIfJson(res);
  });

  test('GET manifest with an unsupported digest algorithm answers 400 or 404', async () => {
    const res = await c.get(`/v2/${repo}/manifests/md5:5d41402abc4b2a76b9719d911017c592`, { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assertStatus(res, [400, 404]);
    assertErrorBodyIfJson(res);
  });

  test('single POST with a malformed ?digest= answers 400 DIGEST_INVALID', async () => {
    const res = await c.post(`/v2/${repo}/blobs/uploads/`, {
      query: { digest: 'sha256:tooshort' },
      headers: { 'content-type': MT.octet },
      body: 'data',
    });
    assertError(res, 400, 'DIGEST_INVALID');
  });

  test('mount with a malformed digest answers 400 DIGEST_INVALID or opens an upload (202)', async () => {
    const res = await c.post(`/v2/${repo}/blobs/uploads/`, { query: { mount: 'sha256:bad', from: repo }, headers: { 'content-length': 0 } });
    assertStatus(res, [400, 202]);
    if (res.status === 400) assertErrorBody(res, 'DIGEST_INVALID');
  });
});

describe('robustness: malformed requests never cause 5xx', () => {
  test('a PATCH with a malformed Content-Range answers 400 or 416', async () => {
    const repo = uniqueRepo('bad-content-range');
    const post = await c.post(`/v2/${repo}/blobs/uploads/`, { headers: { 'content-length': 0 } });
    assertStatus(post, 202);
    const res = await c.patch(c.resolve(post.header('location')!), {
      headers: { 'content-type': MT.octet, 'content-range': 'bytes=zero-ten' },
      body: Buffer.alloc(11),
    });
    assertStatus(res, [400, 416]);
  });

  test('tags list with a non-numeric n answers 400 or ignores it, never 5xx', async () => {
    const repo = uniqueRepo('bad-n');
    await pushImage(c, repo, { ref: 'one' });
    const res = await c.get(`/v2/${repo}/tags/list`, { query: { n: 'lots' } });
    assertStatus(res, [200, 400]);
    if (res.status === 400) assertErrorBody(res);
  });

  test('tags list with a negative n answers 400 or ignores it, never 5xx', async () => {
    const repo = uniqueRepo('neg-n');
    await pushImage(c, repo, { ref: 'one' });
    const res = await c.get(`/v2/${repo}/tags/list`, { query: { n: -5 } });
    assertStatus(res, [200, 400]);
  });

  test('unknown paths under /v2/ answer 404', async () => {
    const repo = uniqueRepo('unknown-path');
    await pushImage(c, repo, { ref: 'one' });
    assertStatus(await c.get(`/v2/${repo}/nonsense/thing`), 404);
    assertStatus(await c.get('/v2/_nothing_here'), 404);
  });

  test('an unsupported method on a known endpoint answers 404, 405 or 400 with UNSUPPORTED', async () => {
    const repo = uniqueRepo('bad-method');
    await pushImage(c, repo, { ref: 'one' });
    const res = await c.request('POST', `/v2/${repo}/tags/list`);
    assertStatus(res, [400, 404, 405]);
    if (res.status === 400) assertErrorBody(res, 'UNSUPPORTED');
  });

  test('a manifest PUT with an empty body answers 400 MANIFEST_INVALID', async () => {
    const repo = uniqueRepo('empty-manifest');
    await pushBlob(c, repo, randomBlob(8));
    const res = await c.put(`/v2/${repo}/manifests/latest`, { headers: { 'content-type': MT.ociManifest }, body: Buffer.alloc(0) });
    assertError(res, 400, 'MANIFEST_INVALID');
  });

  test('a manifest PUT with an unknown Content-Type and a non-JSON body answers 400, not 5xx', async () => {
    const repo = uniqueRepo('weird-ctype');
    await pushBlob(c, repo, randomBlob(8));
    const res = await c.put(`/v2/${repo}/manifests/latest`, { headers: { 'content-type': 'text/plain' }, body: 'hello' });
    assertStatus(res, [400, 415]);
  });
});
