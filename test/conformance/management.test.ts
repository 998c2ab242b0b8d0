// OCI Distribution Spec v1.1 conformance: Content Management (end-9 manifest/tag delete, end-10 blob delete).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCEPT_ALL_MANIFESTS,
  MT,
  assertError,
  assertErrorBody,
  assertErrorBodyIfJson,
  assertStatus,
  buildImage,
  buildIndex,
  manifestDescriptor,
  pushArtifact,
  pushBlob,
  pushBlobs,
  pushImage,
  pushManifest,
  randomBlob,
  registryPerFile,
  uniqueRepo,
  type Descriptor,
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

const accept = { accept: ACCEPT_ALL_MANIFESTS };

function getManifest(repo: string, ref: string): Promise<HttpResponse> {
  return c.get(`/v2/${repo}/manifests/${ref}`, { headers: accept });
}

async function tagsOf(repo: string): Promise<string[]> {
  const res = await c.get(`/v2/${repo}/tags/list`);
  assertStatus(res, 200, 'tags list');
  return res.json().tags ?? [];
}

describe('deleting tags (end-9)', () => {
  test('DELETE /v2/<name>/manifests/<tag> answers 202; the tag then answers 404 MANIFEST_UNKNOWN', async () => {
    const repo = uniqueRepo('del-tag');
    await pushImage(c, repo, { ref: 'doomed' });
    const del = await c.delete(`/v2/${repo}/manifests/doomed`);
    assertStatus(del, 202);
    assertError(await getManifest(repo, 'doomed'), 404, 'MANIFEST_UNKNOWN');
    assertStatus(await c.head(`/v2/${repo}/manifests/doomed`, { headers: accept }), 404);
  });

  test('deleting a tag keeps the manifest (by digest) and its other tags', async () => {
    const repo = uniqueRepo('del-tag-keep');
    const img = await pushImage(c, repo, { ref: 'one' });
    await pushManifest(c, repo, 'two', img.manifest);
    assertStatus(await c.delete(`/v2/${repo}/manifests/one`), 202);
    const byDigest = await getManifest(repo, img.manifest.digest);
    assertStatus(byDigest, 200);
    assert.ok(byDigest.body.equals(img.manifest.bytes));
    assertStatus(await getManifest(repo, 'two'), 200);
  });

  test('a deleted tag disappears from the tags list', async () => {
    const repo = uniqueRepo('del-tag-list');
    const img = await pushImage(c, repo, { ref: 'keep' });
    await pushManifest(c, repo, 'drop', img.manifest);
    assertStatus(await c.delete(`/v2/${repo}/manifests/drop`), 202);
    assert.deepEqual(await tagsOf(repo), ['keep']);
  });

  test('DELETE of an unknown tag answers 404 MANIFEST_UNKNOWN', async () => {
    const repo = uniqueRepo('del-tag-unknown');
    await pushImage(c, repo, { ref: 'present' });
    assertError(await c.delete(`/v2/${repo}/manifests/absent`), 404, 'MANIFEST_UNKNOWN');
  });

  test('a deleted tag can be pushed again', async () => {
    const repo = uniqueRepo('del-tag-repush');
    await pushImage(c, repo, { ref: 'again' });
    assertStatus(await c.delete(`/v2/${repo}/manifests/again`), 202);
    const img2 = await pushImage(c, repo, { ref: 'again' });
    const res = await getManifest(repo, 'again');
    assertStatus(res, 200);
    assert.ok(res.body.equals(img2.manifest.bytes));
  });
});

describe('deleting manifests (end-9)', () => {
  test('DELETE by digest answers 202; GET by digest then answers 404 MANIFEST_UNKNOWN', async () => {
    const repo = uniqueRepo('del-manifest');
    const img = await pushImage(c, repo, { ref: 'latest' });
    assertStatus(await c.delete(`/v2/${repo}/manifests/${img.manifest.digest}`), 202);
    assertError(await getManifest(repo, img.manifest.digest), 404, 'MANIFEST_UNKNOWN');
    assertStatus(await c.head(`/v2/${repo}/manifests/${img.manifest.digest}`, { headers: accept }), 404);
  });

  test('after deleting a manifest, every tag that pointed at it answers 404', async () => {
    const repo = uniqueRepo('del-manifest-tags');
    const img = await pushImage(c, repo, { ref: 'a' });
    await pushManifest(c, repo, 'b', img.manifest);
    assertStatus(await c.delete(`/v2/${repo}/manifests/${img.manifest.digest}`), 202);
    assertError(await getManifest(repo, 'a'), 404, 'MANIFEST_UNKNOWN');
    assertError(await getManifest(repo, 'b'), 404, 'MANIFEST_UNKNOWN');
    // the repository still holds blobs; an empty listing or NAME_UNKNOWN are both acceptable, listing a dead tag is not
    const list = await c.get(`/v2/${repo}/tags/list`);
    if (list.status === 404) assertErrorBody(list, 'NAME_UNKNOWN');
    else {
      assertStatus(list, 200);
      assert.deepEqual(list.json().tags ?? [], []);
    }
  });

  test('deleting one manifest leaves the other manifests of the repository alone', async () => {
    const repo = uniqueRepo('del-manifest-other');
    const gone = await pushImage(c, repo, { ref: 'gone' });
    const stays = await pushImage(c, repo, { ref: 'stays' });
    assertStatus(await c.delete(`/v2/${repo}/manifests/${gone.manifest.digest}`), 202);
    const res = await getManifest(repo, 'stays');
    assertStatus(res, 200);
    assert.ok(res.body.equals(stays.manifest.bytes));
  });

  test('deleting a manifest in one repository leaves the same manifest in another', async () => {
    const a = uniqueRepo('del-manifest-a');
    const b = uniqueRepo('del-manifest-b');
    const img = buildImage();
    for (const r of [a, b]) {
      await pushBlobs(c, r, img.blobs);
      await pushManifest(c, r, 'latest', img.manifest);
    }
    assertStatus(await c.delete(`/v2/${a}/manifests/${img.manifest.digest}`), 202);
    assertStatus(await getManifest(b, img.manifest.digest), 200);
    assertStatus(await getManifest(b, 'latest'), 200);
  });

  test('DELETE of an unknown digest answers 404 MANIFEST_UNKNOWN', async () => {
    const repo = uniqueRepo('del-manifest-unknown');
    await pushImage(c, repo, { ref: 'x' });
    assertError(await c.delete(`/v2/${repo}/manifests/${randomBlob(16).digest}`), 404, 'MANIFEST_UNKNOWN');
  });

  test('DELETE of a manifest in a repository that does not exist answers 404', async () => {
    const res = await c.delete(`/v2/${uniqueRepo('del-no-repo')}/manifests/${randomBlob(16).digest}`);
    assertError(res, 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
  });

  test('an image index can be deleted by digest', async () => {
    const repo = uniqueRepo('del-index');
    const img = await pushImage(c, repo, {});
    const idx = buildIndex([{ manifest: img.manifest, platform: { os: 'linux', architecture: 'amd64' } }]);
    await pushManifest(c, repo, 'multi', idx);
    assertStatus(await c.delete(`/v2/${repo}/manifests/${idx.digest}`), 202);
    assertError(await getManifest(repo, 'multi'), 404, 'MANIFEST_UNKNOWN');
  });

  test('a deleted manifest can be pushed again and is served again', async () => {
    const repo = uniqueRepo('del-manifest-repush');
    const img = await pushImage(c, repo, { ref: 'v1' });
    assertStatus(await c.delete(`/v2/${repo}/manifests/${img.manifest.digest}`), 202);
    await pushManifest(c, repo, 'v1', img.manifest);
    const res = await getManifest(repo, img.manifest.digest);
    assertStatus(res, 200);
    assert.ok(res.body.equals(img.manifest.bytes));
  });

  test('a deleted referrer disappears from the referrers list', async () => {
    const repo = uniqueRepo('del-referrer');
    const base = await pushImage(c, repo, { ref: 'base' });
    const subject = manifestDescriptor(base.manifest);
    const keep = await pushArtifact(c, repo, { artifactType: 'application/vnd.example.sig.v1', subject });
    const drop = await pushArtifact(c, repo, { artifactType: 'application/vnd.example.sig.v1', subject });
    assertStatus(await c.delete(`/v2/${repo}/manifests/${drop.manifest.digest}`), 202);
    const res = await c.get(`/v2/${repo}/referrers/${base.manifest.digest}`);
    assertStatus(res, 200);
    assert.equal(res.header('content-type'), MT.ociIndex);
    const digests = res.json<{ manifests: Descriptor[] }>().manifests.map((d) => d.digest);
    assert.deepEqual(digests, [keep.manifest.digest]);
  });

  test('the referrers API still answers 200 with an index after the subject is deleted', async () => {
    const repo = uniqueRepo('del-subject');
    const base = await pushImage(c, repo, { ref: 'base' });
    await pushArtifact(c, repo, { artifactType: 'application/vnd.example.sig.v1', subject: manifestDescriptor(base.manifest) });
    assertStatus(await c.delete(`/v2/${repo}/manifests/${base.manifest.digest}`), 202);
    const res = await c.get(`/v2/${repo}/referrers/${base.manifest.digest}`);
    assertStatus(res, 200);
    assert.equal(res.header('content-type'), MT.ociIndex);
    assert.ok(Array.isArray(res.json().manifests));
  });
});

describe('deleting blobs (end-10)', () => {
  test('DELETE /v2/<name>/blobs/<digest> answers 202; HEAD then 404, GET 404 BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('del-blob');
    const blob = randomBlob(777);
    await pushBlob(c, repo, blob);
    assertStatus(await c.delete(`/v2/${repo}/blobs/${blob.digest}`), 202);
    assertStatus(await c.head(`/v2/${repo}/blobs/${blob.digest}`), 404);
    assertError(await c.get(`/v2/${repo}/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
  });

  test('DELETE of an unknown blob answers 404 BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('del-blob-unknown');
    await pushBlob(c, repo, randomBlob(10));
    assertError(await c.delete(`/v2/${repo}/blobs/${randomBlob(10).digest}`), 404, 'BLOB_UNKNOWN');
  });

  test('DELETE of a blob twice answers 202 then 404 BLOB_UNKNOWN', async () => {
    const repo = uniqueRepo('del-blob-twice');
    const blob = randomBlob(100);
    await pushBlob(c, repo, blob);
    assertStatus(await c.delete(`/v2/${repo}/blobs/${blob.digest}`), 202);
    assertError(await c.delete(`/v2/${repo}/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
  });

  test('DELETE of a blob with a malformed digest answers 400 DIGEST_INVALID or 404', async () => {
    const repo = uniqueRepo('del-blob-malformed');
    await pushBlob(c, repo, randomBlob(10));
    const res = await c.delete(`/v2/${repo}/blobs/sha256:zzzz`);
    assertStatus(res, [400, 404]);
    if (res.status === 400) assertErrorBody(res, 'DIGEST_INVALID');
    else assertErrorBodyIfJson(res);
  });

  test('deleting a blob from one repository leaves the copy mounted into another', async () => {
    const a = uniqueRepo('del-blob-a');
    const b = uniqueRepo('del-blob-b');
    const blob = randomBlob(1234);
    await pushBlob(c, a, blob);
    const mount = await c.post(`/v2/${b}/blobs/uploads/`, { query: { mount: blob.digest, from: a }, headers: { 'content-length': 0 } });
    assertStatus(mount, 201);
    assertStatus(await c.delete(`/v2/${a}/blobs/${blob.digest}`), 202);
    assertStatus(await c.head(`/v2/${a}/blobs/${blob.digest}`), 404);
    const res = await c.get(`/v2/${b}/blobs/${blob.digest}`);
    assertStatus(res, 200);
    assert.ok(res.body.equals(blob.data));
  });

  test('a deleted blob can be uploaded again', async () => {
    const repo = uniqueRepo('del-blob-reupload');
    const blob = randomBlob(500);
    await pushBlob(c, repo, blob);
    assertStatus(await c.delete(`/v2/${repo}/blobs/${blob.digest}`), 202);
    await pushBlob(c, repo, blob);
    const res = await c.get(`/v2/${repo}/blobs/${blob.digest}`);
    assertStatus(res, 200);
    assert.ok(res.body.equals(blob.data));
  });
});
