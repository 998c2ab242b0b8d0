// OCI Distribution Spec v1.1 conformance: Content Discovery (end-8a/8b tags list, end-12a/12b referrers)
// plus the Docker-era catalog (/v2/_catalog), which clients such as skopeo and the console still use.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  MT,
  asciiSorted,
  assertError,
  assertErrorBody,
  assertStatus,
  buildArtifact,
  buildImage,
  buildIndex,
  isLexicallySorted,
  manifestDescriptor,
  parseNextLink,
  pushArtifact,
  pushBlobs,
  pushImage,
  pushManifest,
  randomBlob,
  registryPerFile,
  uniqueRepo,
  type BuiltImage,
  type Descriptor,
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

interface TagList {
  name: string;
  tags: string[] | null;
}

async function listTags(repo: string, query?: Record<string, string | number>): Promise<{ res: HttpResponse; tags: string[] }> {
  const res = await c.get(`/v2/${repo}/tags/list`, { query });
  assertStatus(res, 200, 'tags list');
  const body = res.json<TagList>();
  assert.equal(body.name, repo, 'tags list "name"');
  assert.ok(body.tags === null || Array.isArray(body.tags), `"tags" must be a list: ${res.snippet()}`);
  return { res, tags: body.tags ?? [] };
}

/** Tags the same manifest under every name in `tags` (in the given order). */
async function tagAll(repo: string, tags: string[]): Promise<BuiltImage> {
  const img = buildImage();
  await pushBlobs(c, repo, img.blobs);
  for (const t of tags) await pushManifest(c, repo, t, img.manifest);
  return img;
}

describe('listing tags (end-8a, end-8b)', () => {
  // all lower case, so ASCII order and case-insensitive order agree
  const TAGS = ['latest', 'v2', '1.0', 'beta', 'v10', 'alpha', '2.0', 'gamma', 'v1', 'delta'];
  const SORTED = asciiSorted(TAGS);
  let repo: string;

  before(async () => {
    repo = uniqueRepo('tags');
    await tagAll(repo, TAGS);
  });

  test('GET /v2/<name>/tags/list answers 200 with {name, tags} listing every tag', async () => {
    const { tags } = await listTags(repo);
    assert.deepEqual([...tags].sort(), [...TAGS].sort());
  });

  test('tags are in lexical order', async () => {
    const { tags } = await listTags(repo);
    assert.deepEqual(tags, SORTED);
  });

  test('mixed-case tags are in ASCII or case-insensitive order', async () => {
    const r = uniqueRepo('tags-case');
    const mixed = ['b', 'B', 'a', 'C', 'A1', 'a0', '_x', '9'];
    await tagAll(r, mixed);
    const { tags } = await listTags(r);
    assert.deepEqual([...tags].sort(), [...mixed].sort());
    assert.ok(isLexicallySorted(tags), `not in lexical order: ${JSON.stringify(tags)}`);
  });

  test('n=3 returns exactly the first 3 tags', async () => {
    const { tags } = await listTags(repo, { n: 3 });
    assert.deepEqual(tags, SORTED.slice(0, 3));
  });

  test('n=3 sends Link: </v2/<name>/tags/list?n=3&last=<last tag>>; rel="next"', async () => {
    const { res, tags } = await listTags(repo, { n: 3 });
    const next = parseNextLink(res);
    assert.ok(next, 'a Link header is expected when more tags are available');
    const u = new URL(next, c.origin);
    assert.equal(u.pathname, `/v2/${repo}/tags/list`);
    assert.equal(u.searchParams.get('n'), '3');
    assert.equal(u.searchParams.get('last'), tags[tags.length - 1]);
  });

  test('following Link headers visits every tag exactly once, in order', async () => {
    let target: string | undefined = `/v2/${repo}/tags/list?n=4`;
    const seen: string[] = [];
    for (let page = 0; target && page < 10; page++) {
      const res = await c.get(c.resolve(target));
      assertStatus(res, 200);
      const body = res.json<TagList>();
      const tags = body.tags ?? [];
      assert.ok(tags.length <= 4, `page of ${tags.length} tags exceeds n=4`);
      seen.push(...tags);
      target = parseNextLink(res);
    }
    assert.equal(target, undefined, 'pagination did not end');
    assert.deepEqual(seen, SORTED);
  });

  test('last=<tag> returns only the tags after it', async () => {
    const last = SORTED[4]!;
    const { tags } = await listTags(repo, { last });
    assert.deepEqual(tags, SORTED.slice(5));
  });

  test('n=2&last=<tag> returns the 2 tags after it', async () => {
    const last = SORTED[2]!;
    const { tags } = await listTags(repo, { n: 2, last });
    assert.deepEqual(tags, SORTED.slice(3, 5));
  });

  test('n=0 returns an empty list and no Link header', async () => {
    const { res, tags } = await listTags(repo, { n: 0 });
    assert.deepEqual(tags, []);
    assert.equal(res.header('link'), undefined);
  });

  test('n larger than the number of tags returns all of them and no Link header', async () => {
    const { res, tags } = await listTags(repo, { n: 1000 });
    assert.deepEqual(tags, SORTED);
    assert.equal(res.header('link'), undefined);
  });

  test('the last page has no Link header', async () => {
    const { res, tags } = await listTags(repo, { n: 5, last: SORTED[4]! });
    assert.deepEqual(tags, SORTED.slice(5));
    assert.equal(res.header('link'), undefined);
  });

  test('tags list of a repository that does not exist answers 404 NAME_UNKNOWN', async () => {
    const res = await c.get(`/v2/${uniqueRepo('no-tags-repo')}/tags/list`);
    assertError(res, 404, 'NAME_UNKNOWN');
  });

  test('tags list of a repository holding only untagged manifests answers 200 with an empty list', async () => {
    const r = uniqueRepo('tags-untagged');
    await pushImage(c, r, {}); // pushed by digest
    const { tags } = await listTags(r);
    assert.deepEqual(tags, []);
  });
});

describe('catalog (/v2/_catalog)', () => {
  let prefix: string;
  let repos: string[];

  before(async () => {
    prefix = uniqueRepo('catalog');
    repos = [`${prefix}/c`, `${prefix}/a`, `${prefix}/b`, `${prefix}/a/nested`];
    for (const r of repos) await pushImage(c, r, { ref: 'latest' });
    repos = asciiSorted(repos);
  });

  async function catalog(query?: Record<string, string | number>): Promise<{ res: HttpResponse; list: string[] }> {
    const res = await c.get('/v2/_catalog', { query });
    assertStatus(res, 200, 'catalog');
    const body = res.json<{ repositories: string[] | null }>();
    assert.ok(body.repositories === null || Array.isArray(body.repositories), `"repositories" must be a list: ${res.snippet()}`);
    return { res, list: body.repositories ?? [] };
  }

  /** Walks the whole catalog through Link headers. */
  async function walk(n: number): Promise<string[]> {
    const seen: string[] = [];
    let target: string | undefined = `/v2/_catalog?n=${n}`;
    for (let page = 0; target && page < 10_000; page++) {
      const res = await c.get(c.resolve(target));
      assertStatus(res, 200);
      const list: string[] = res.json().repositories ?? [];
      assert.ok(list.length <= n, `page of ${list.length} exceeds n=${n}`);
      seen.push(...list);
      target = parseNextLink(res);
    }
    assert.equal(target, undefined, 'catalog pagination did not end');
    return seen;
  }

  test('GET /v2/_catalog answers 200 with {repositories} including new repositories', async () => {
    const all = await walk(100);
    for (const r of repos) assert.ok(all.includes(r), `${r} missing from the catalog`);
  });

  test('repositories are in lexical order', async () => {
    const all = await walk(100);
    assert.ok(isLexicallySorted(all), `catalog not sorted: ${JSON.stringify(all.slice(0, 20))}…`);
  });

  test('n=1 returns one repository and a Link rel="next" to /v2/_catalog with n and last', async () => {
    const { res, list } = await catalog({ n: 1 });
    assert.equal(list.length, 1);
    const next = parseNextLink(res);
    assert.ok(next, 'Link header expected');
    const u = new URL(next, c.origin);
    assert.equal(u.pathname, '/v2/_catalog');
    assert.equal(u.searchParams.get('n'), '1');
    assert.equal(u.searchParams.get('last'), list[0]);
  });

  test('last=<repository> returns the repositories after it', async () => {
    const { list } = await catalog({ n: 3, last: repos[0]! });
    assert.deepEqual(list, repos.slice(1, 4));
  });

  test('paging with n=2 visits every repository exactly once', async () => {
    const all = await walk(2);
    assert.equal(new Set(all).size, all.length, 'a repository appeared twice');
    for (const r of repos) assert.ok(all.includes(r), `${r} missing`);
  });

  test('n=0 returns an empty list', async () => {
    const { res, list } = await catalog({ n: 0 });
    assert.deepEqual(list, []);
    assert.equal(res.header('link'), undefined);
  });
});

describe('listing referrers (end-12a, end-12b)', () => {
  const AT_SBOM = 'application/vnd.example.sbom.v1+json';
  const AT_SIG = 'application/vnd.example.signature.v1';
  const AT_BUNDLE = 'application/vnd.example.bundle.v1';
  const CONFIG_TYPE = 'application/vnd.example.config.v1+json';

  let repo: string;
  let subject: BuiltImage;
  let subjectDesc: Descriptor;
  /** Expected descriptors by referrer digest. */
  const expected = new Map<string, Descriptor>();
  let notReferrers: string[] = [];

  function expect(m: ManifestData, artifactType: string | undefined, annotations?: Record<string, string>) {
    expected.set(m.digest, {
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      ...(artifactType ? { artifactType } : {}),
      ...(annotations ? { annotations } : {}),
    });
  }

  before(async () => {
    repo = uniqueRepo('referrers');
    subject = await pushImage(c, repo, { ref: 'base' });
    subjectDesc = manifestDescriptor(subject.manifest);

    for (const [i, at] of [AT_SBOM, AT_SBOM, AT_SIG].entries()) {
      const annotations = { 'org.opencontainers.conformance': `referrer-${i}`, 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' };
      const art = await pushArtifact(c, repo, { artifactType: at, subject: subjectDesc, annotations });
      expect(art.manifest, at, annotations);
    }
    // an image manifest without artifactType: listed with its config media type
    const cfgTyped = buildImage({ configMediaType: CONFIG_TYPE, subject: subjectDesc, annotations: { 'org.example.kind': 'config-typed' } });
    await pushBlobs(c, repo, cfgTyped.blobs);
    await pushManifest(c, repo, cfgTyped.manifest.digest, cfgTyped.manifest);
    expect(cfgTyped.manifest, CONFIG_TYPE, { 'org.example.kind': 'config-typed' });

    // indexes with a subject, without and with artifactType
    const part = await pushArtifact(c, repo, { artifactType: 'application/vnd.example.part.v1' });
    notReferrers.push(part.manifest.digest);
    const idxPlain = buildIndex([{ manifest: part.manifest }], { subject: subjectDesc, annotations: { 'org.example.kind': 'index-plain' } });
    await pushManifest(c, repo, idxPlain.digest, idxPlain);
    expect(idxPlain, undefined, { 'org.example.kind': 'index-plain' });
    const idxTyped = buildIndex([{ manifest: part.manifest }], { subject: subjectDesc, artifactType: AT_BUNDLE });
    await pushManifest(c, repo, idxTyped.digest, idxTyped);
    expect(idxTyped, AT_BUNDLE);

    // a referrer that is also tagged: still one entry
    const tagged = await pushArtifact(c, repo, { artifactType: AT_SIG, subject: subjectDesc, ref: 'tagged-signature' });
    expect(tagged.manifest, AT_SIG);

    // noise: an unrelated image, and a referrer of the same subject in another repository
    const unrelated = await pushImage(c, repo, { ref: 'unrelated' });
    notReferrers.push(unrelated.manifest.digest, subject.manifest.digest);
    const elsewhere = uniqueRepo('referrers-elsewhere');
    await pushImage(c, elsewhere, { layerBlobs: subject.layers, config: subject.config, ref: 'base' });
    const foreign = await pushArtifact(c, elsewhere, { artifactType: AT_SBOM, subject: subjectDesc });
    notReferrers.push(foreign.manifest.digest);
  });

  async function referrers(digest: string, query?: Record<string, string>): Promise<{ res: HttpResponse; manifests: Descriptor[] }> {
    const res = await c.get(`/v2/${repo}/referrers/${digest}`, { query });
    assertStatus(res, 200, 'referrers');
    assert.equal(res.header('content-type'), MT.ociIndex, 'referrers Content-Type');
    const body = res.json<{ schemaVersion: number; mediaType: string; manifests: Descriptor[] }>();
    assert.equal(body.schemaVersion, 2);
    assert.equal(body.mediaType, MT.ociIndex);
    assert.ok(Array.isArray(body.manifests), '"manifests" must be a list');
    return { res, manifests: body.manifests };
  }

  function byDigest(list: Descriptor[]): Map<string, Descriptor> {
    return new Map(list.map((d) => [d.digest, d]));
  }

  test('answers 200 with Content-Type application/vnd.oci.image.index.v1+json and an image index', async () => {
    await referrers(subject.manifest.digest);
  });

  test('lists every referrer once, with its mediaType, size and digest', async () => {
    const { manifests } = await referrers(subject.manifest.digest);
    assert.equal(manifests.length, expected.size, `expected ${expected.size} referrers, got ${JSON.stringify(manifests.map((d) => d.digest))}`);
    const got = byDigest(manifests);
    for (const [digest, want] of expected) {
      const d = got.get(digest);
      assert.ok(d, `referrer ${digest} missing`);
      assert.equal(d.mediaType, want.mediaType, `${digest} mediaType`);
      assert.equal(d.size, want.size, `${digest} size`);
    }
  });

  test('descriptors carry the artifactType of the referrer', async () => {
    const got = byDigest((await referrers(subject.manifest.digest)).manifests);
    for (const [digest, want] of expected) {
      if (want.artifactType && want.artifactType !== CONFIG_TYPE) assert.equal(got.get(digest)?.artifactType, want.artifactType, digest);
    }
  });

  test('an image manifest without artifactType is listed with its config mediaType as artifactType', async () => {
    const got = (await referrers(subject.manifest.digest)).manifests.filter((d) => d.annotations?.['org.example.kind'] === 'config-typed');
    assert.equal(got.length, 1);
    assert.equal(got[0]!.artifactType, CONFIG_TYPE);
  });

  test('an index without artifactType is listed without artifactType', async () => {
    const got = (await referrers(subject.manifest.digest)).manifests.filter((d) => d.annotations?.['org.example.kind'] === 'index-plain');
    assert.equal(got.length, 1);
    assert.equal(got[0]!.mediaType, MT.ociIndex);
    assert.ok(!got[0]!.artifactType, `artifactType should be omitted, got ${got[0]!.artifactType}`);
  });

  test("descriptors carry the referrer's annotations", async () => {
    const got = byDigest((await referrers(subject.manifest.digest)).manifests);
    for (const [digest, want] of expected) {
      if (!want.annotations) continue;
      assert.deepEqual(got.get(digest)?.annotations, want.annotations, `${digest} annotations`);
    }
  });

  test('manifests without that subject and referrers in other repositories are not listed', async () => {
    const got = byDigest((await referrers(subject.manifest.digest)).manifests);
    for (const d of notReferrers) assert.ok(!got.has(d), `${d} must not be listed`);
  });

  test('?artifactType= returns only matching referrers and OCI-Filters-Applied: artifactType', async () => {
    const { res, manifests } = await referrers(subject.manifest.digest, { artifactType: AT_SBOM });
    assert.equal(res.header('oci-filters-applied'), 'artifactType');
    const want = [...expected.values()].filter((d) => d.artifactType === AT_SBOM).map((d) => d.digest).sort();
    assert.deepEqual(manifests.map((d) => d.digest).sort(), want);
    for (const d of manifests) assert.equal(d.artifactType, AT_SBOM);
  });

  test('?artifactType= also filters index referrers', async () => {
    const { res, manifests } = await referrers(subject.manifest.digest, { artifactType: AT_BUNDLE });
    assert.equal(res.header('oci-filters-applied'), 'artifactType');
    assert.equal(manifests.length, 1);
    assert.equal(manifests[0]!.mediaType, MT.ociIndex);
  });

  test('?artifactType= matching nothing answers 200 with an empty index', async () => {
    const { res, manifests } = await referrers(subject.manifest.digest, { artifactType: 'application/vnd.example.none' });
    assert.deepEqual(manifests, []);
    assert.equal(res.header('oci-filters-applied'), 'artifactType');
  });

  test('without a filter, OCI-Filters-Applied is not sent', async () => {
    const { res } = await referrers(subject.manifest.digest);
    assert.ok(!res.header('oci-filters-applied'), `unexpected OCI-Filters-Applied: ${res.header('oci-filters-applied')}`);
  });

  test('a manifest with no referrers answers 200 with an empty index', async () => {
    const { manifests } = await referrers(notReferrers[1]!); // the unrelated image
    assert.deepEqual(manifests, []);
  });

  test('a digest unknown to the repository answers 200 with an empty index', async () => {
    const { manifests } = await referrers(randomBlob(64).digest);
    assert.deepEqual(manifests, []);
  });

  test('a malformed digest answers 400', async () => {
    const res = await c.get(`/v2/${repo}/referrers/sha256:not-a-digest`);
    assertStatus(res, 400);
    assertErrorBody(res);
  });

  test('a referrer pushed before its subject is listed before and after the subject arrives', async () => {
    const r = uniqueRepo('referrers-early');
    const future = buildImage();
    const art = await pushArtifact(c, r, { artifactType: AT_SIG, subject: manifestDescriptor(future.manifest) });
    const before = await c.get(`/v2/${r}/referrers/${future.manifest.digest}`);
    assertStatus(before, 200);
    assert.deepEqual(
      before.json<{ manifests: Descriptor[] }>().manifests.map((d) => d.digest),
      [art.manifest.digest],
    );
    await pushBlobs(c, r, future.blobs);
    await pushManifest(c, r, 'late', future.manifest);
    const after = await c.get(`/v2/${r}/referrers/${future.manifest.digest}`);
    assertStatus(after, 200);
    assert.deepEqual(
      after.json<{ manifests: Descriptor[] }>().manifests.map((d) => d.digest),
      [art.manifest.digest],
    );
  });

  test('a referrer of a referrer is listed under its own subject only', async () => {
    const r = uniqueRepo('referrers-chain');
    const base = await pushImage(c, r, { ref: 'base' });
    const sig = await pushArtifact(c, r, { artifactType: AT_SIG, subject: manifestDescriptor(base.manifest) });
    const sigOfSig = await pushArtifact(c, r, { artifactType: AT_SIG, subject: manifestDescriptor(sig.manifest) });
    const l1 = await c.get(`/v2/${r}/referrers/${base.manifest.digest}`);
    const l2 = await c.get(`/v2/${r}/referrers/${sig.manifest.digest}`);
    assertStatus(l1, 200);
    assertStatus(l2, 200);
    assert.deepEqual(l1.json().manifests.map((d: Descriptor) => d.digest), [sig.manifest.digest]);
    assert.deepEqual(l2.json().manifests.map((d: Descriptor) => d.digest), [sigOfSig.manifest.digest]);
  });

  test('a sha512 subject digest is supported', async () => {
    const r = uniqueRepo('referrers-sha512');
    const base = buildImage({ algo: 'sha512' });
    await pushBlobs(c, r, base.blobs);
    await pushManifest(c, r, base.manifest.digest, base.manifest);
    const art = buildArtifact({ artifactType: AT_SBOM, subject: manifestDescriptor(base.manifest) });
    await pushBlobs(c, r, art.blobs);
    const put = await pushManifest(c, r, art.manifest.digest, art.manifest);
    assert.equal(put.header('oci-subject'), base.manifest.digest);
    const res = await c.get(`/v2/${r}/referrers/${base.manifest.digest}`);
    assertStatus(res, 200);
    assert.deepEqual(res.json().manifests.map((d: Descriptor) => d.digest), [art.manifest.digest]);
  });
});
