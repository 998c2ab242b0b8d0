// The shared MetaStore contract: SQLite today, PostgreSQL next; each implementation's test file calls describeMetaStore().
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import { RegistryError } from '../../../src/oci/errors.js';
import type { MetaStore, PutManifestInput } from '../../../src/meta/meta-store.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const d = (s: string) => digestOf(s);

function manifest(repo: string, name: string, blobs: Digest[], extra: Partial<PutManifestInput> = {}): PutManifestInput {
  return { repo, digest: d(name), mediaType: OCI_MANIFEST, size: 100, blobs, manifests: [], tags: [], ...extra };
}

export function describeMetaStore(name: string, make: () => Promise<{ meta: MetaStore; cleanup(): Promise<void> }>): void {
  describe(`MetaStore contract: ${name}`, () => {
    let meta: MetaStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => ({ meta, cleanup } = await make()));
    afterEach(async () => cleanup());

    /** Reserve + link, as a finished upload does. */
    async function upload(repo: string, digest: Digest, now = 1000, size = 10) {
      assert.equal(await meta.reserveBlob(digest, size, now), 'ok');
      await meta.linkBlob(repo, digest, now);
    }
    async function storeManifest(input: PutManifestInput, now = 1000) {
      await meta.reserveBlob(input.digest, input.size, now);
      await meta.putManifest(input, now);
    }

    it('sums storage per namespace, counting a shared blob once', async () => {
      await upload('team/a', d('l1'), 1000, 100);
      await upload('team/b', d('l1'), 1000, 100);
      await upload('team/b', d('l2'), 1000, 50);
      await upload('teamx/c', d('l3'), 1000, 7);
      await storeManifest(manifest('team/a', 'm1', [d('l1')], { size: 100 }));
      assert.equal(await meta.storageUsed('team'), 100 + 50 + 100, 'l1 once, l2, the manifest; not teamx');
      assert.equal(await meta.storageUsed('teamx'), 7);
      assert.equal(await meta.storageUsed('none'), 0);
      assert.equal(await meta.namespaceHolds('team', d('l1')), true);
      assert.equal(await meta.namespaceHolds('team', d('l3')), false, 'teamx/c is not in team');
      assert.equal(await meta.namespaceHolds('teamx', d('l3')), true);
    });

    it('links blobs per repository', async () => {
      await upload('a/x', d('layer'));
      assert.deepEqual(await meta.getBlobLink('a/x', d('layer')), { digest: d('layer'), size: 10 });
      assert.equal(await meta.getBlobLink('b/y', d('layer')), null, 'not visible from another repository');
      assert.ok(await meta.repositoryExists('a/x'));
      assert.equal(await meta.unlinkBlob('a/x', d('layer')), true);
      assert.equal(await meta.getBlobLink('a/x', d('layer')), null);
      assert.equal(await meta.unlinkBlob('a/x', d('layer')), false);
    });

    it('linking a blob that is not live fails with BLOB_UNKNOWN', async () => {
      await assert.rejects(meta.linkBlob('a/x', d('never'), 1), (e) => e instanceof RegistryError && e.code === 'BLOB_UNKNOWN');
    });

    it('putManifest refuses missing blobs atomically and stores nothing', async () => {
      await upload('r', d('config'));
      await assert.rejects(
        storeManifest(manifest('r', 'm1', [d('config'), d('missing')], { tags: ['t'] })),
        (e) => e instanceof RegistryError && e.code === 'MANIFEST_BLOB_UNKNOWN' && e.message.includes(d('missing')),
      );
      assert.equal(await meta.getManifest('r', d('m1')), null);
      assert.equal(await meta.resolveTag('r', 't'), null);
    });

    it('a blob linked only in another repository does not satisfy a manifest', async () => {
      await upload('other', d('layer'));
      await assert.rejects(storeManifest(manifest('r', 'm', [d('layer')])), (e) => e instanceof RegistryError && e.code === 'MANIFEST_BLOB_UNKNOWN');
    });

    it('stores manifests, tags and resolves; delete by digest removes its tags', async () => {
      await upload('r', d('l1'));
      await storeManifest(manifest('r', 'm1', [d('l1')], { tags: ['v1', 'latest'], annotations: { a: 'b' } }));
      assert.equal(await meta.resolveTag('r', 'v1'), d('m1'));
      const rec = await meta.getManifest('r', d('m1'));
      assert.equal(rec?.mediaType, OCI_MANIFEST);
      assert.deepEqual(rec?.annotations, { a: 'b' });
      assert.deepEqual(await meta.listTags('r', { limit: 10 }), ['latest', 'v1']);
      assert.equal(await meta.deleteManifest('r', d('m1')), true);
      assert.equal(await meta.resolveTag('r', 'latest'), null);
      assert.equal(await meta.deleteManifest('r', d('m1')), false);
    });

    it('moves a tag on re-push and deletes single tags', async () => {
      await upload('r', d('l1'));
      await storeManifest(manifest('r', 'm1', [d('l1')], { tags: ['v'] }));
      await storeManifest(manifest('r', 'm2', [d('l1')], { tags: ['v'] }));
      assert.equal(await meta.resolveTag('r', 'v'), d('m2'));
      assert.equal(await meta.deleteTag('r', 'v'), true);
      assert.equal(await meta.deleteTag('r', 'v'), false);
      assert.ok(await meta.getManifest('r', d('m2')), 'deleting a tag keeps the manifest');
    });

    it('paginates tags and repositories in lexical order', async () => {
      await upload('r', d('l1'));
      const tags = ['b', 'a', 'C', '10', '9', 'a-1'];
      await storeManifest(manifest('r', 'm', [d('l1')], { tags }));
      const sorted = [...tags].sort();
      assert.deepEqual(await meta.listTags('r', { limit: 100 }), sorted);
      assert.deepEqual(await meta.listTags('r', { limit: 2 }), sorted.slice(0, 2));
      assert.deepEqual(await meta.listTags('r', { limit: 2, last: sorted[1] }), sorted.slice(2, 4));
      for (const repo of ['z', 'a/b', 'm']) await upload(repo, d('l1'));
      assert.deepEqual(await meta.listRepositories({ limit: 2, last: 'a/b' }), ['m', 'r']);
    });

    it('index children must be manifests of the same repository', async () => {
      await upload('r', d('l1'));
      await storeManifest(manifest('r', 'child', [d('l1')]));
      await storeManifest({ ...manifest('r', 'index', []), mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [d('child')] });
      await assert.rejects(
        storeManifest({ ...manifest('q', 'index2', []), manifests: [d('child')] }),
        (e) => e instanceof RegistryError && e.code === 'MANIFEST_BLOB_UNKNOWN',
      );
    });

    it('lists referrers by subject with artifactType filtering', async () => {
      await upload('r', d('l1'));
      await storeManifest(manifest('r', 'sig', [d('l1')], { subject: d('subject'), artifactType: 'application/sig' }));
      await storeManifest(manifest('r', 'sbom', [d('l1')], { subject: d('subject'), artifactType: 'application/sbom', annotations: { k: 'v' } }));
      const all = await meta.listReferrers('r', d('subject'));
      assert.deepEqual(all.map((x) => x.digest).sort(), [d('sig'), d('sbom')].sort());
      const sboms = await meta.listReferrers('r', d('subject'), 'application/sbom');
      assert.deepEqual(sboms, [{ mediaType: OCI_MANIFEST, digest: d('sbom'), size: 100, artifactType: 'application/sbom', annotations: { k: 'v' } }]);
      assert.deepEqual(await meta.listReferrers('other', d('subject')), []);
    });

    it('upload sessions', async () => {
      await meta.createUpload({ id: 'u1', repo: 'r', startedAt: 5 });
      assert.deepEqual(await meta.getUpload('u1'), { id: 'u1', repo: 'r', startedAt: 5 });
      assert.deepEqual((await meta.listUploadsStartedBefore(6)).map((u) => u.id), ['u1']);
      assert.deepEqual(await meta.listUploadsStartedBefore(5), []);
      await meta.deleteUpload('u1');
      assert.equal(await meta.getUpload('u1'), null);
    });

    describe('GC state machine', () => {
      it('only unreferenced, unlinked blobs idle before the cutoff are candidates', async () => {
        await upload('r', d('used'), 100);
        await upload('r', d('orphan'), 100);
        await storeManifest(manifest('r', 'm', [d('used')], { tags: ['t'] }), 100);
        assert.equal(await meta.pruneBlobLinks(1000), 1, 'only the link no manifest uses is pruned');
        assert.deepEqual((await meta.listGcCandidates(1000, 10)).map((c) => c.digest), [d('orphan')]);
        assert.deepEqual(await meta.listGcCandidates(50, 10), [], 'touched after the cutoff');
      });

      it('markDeleting re-checks: a touch or a new link in between wins', async () => {
        await meta.reserveBlob(d('b'), 1, 100);
        await meta.touchBlob(d('b'), 2000);
        assert.equal(await meta.markDeleting(d('b'), 1000, 3000), false, 'touched after cutoff');
        await meta.reserveBlob(d('c'), 1, 100);
        await meta.linkBlob('r', d('c'), 2000);
        assert.equal(await meta.markDeleting(d('c'), 1000, 3000), false, 'linked (uploaded, mounted) after the cutoff');
        await meta.reserveBlob(d('m'), 1, 100);
        await meta.linkBlob('r', d('m'), 100);
        await meta.reserveBlob(d('mf'), 1, 100);
        await meta.putManifest({ repo: 'r', digest: d('mf'), mediaType: 'x', size: 1, blobs: [d('m')], manifests: [], tags: [] }, 100);
        assert.equal(await meta.markDeleting(d('m'), 1000, 3000), false, 'referenced by a manifest');
        await meta.reserveBlob(d('e'), 1, 100);
        assert.equal(await meta.markDeleting(d('e'), 1000, 3000), true);
      });

      it('a blob being deleted is invisible and cannot be reserved until deletion finishes', async () => {
        await meta.reserveBlob(d('b'), 1, 100);
        assert.equal(await meta.markDeleting(d('b'), 1000, 3000), true);
        assert.equal(await meta.getLiveBlob(d('b')), null);
        assert.equal(await meta.reserveBlob(d('b'), 1, 3001), 'deleting');
        await assert.rejects(meta.linkBlob('r', d('b'), 3001));
        await meta.finishDeleting(d('b'));
        assert.equal(await meta.reserveBlob(d('b'), 1, 3002), 'ok');
        assert.ok(await meta.getLiveBlob(d('b')));
      });

      it('finishing a deletion drops the repository links, so a re-upload elsewhere does not reappear', async () => {
        await upload('a', d('x'), 100);
        assert.equal(await meta.markDeleting(d('x'), 1000, 3000), true);
        await meta.finishDeleting(d('x'));
        await upload('b', d('x'), 4000);
        assert.equal(await meta.getBlobLink('a', d('x')), null);
        assert.ok(await meta.getBlobLink('b', d('x')));
      });

      it('a deletion stuck for long is taken over by a writer and reported as stuck', async () => {
        await meta.reserveBlob(d('b'), 1, 100);
        await meta.markDeleting(d('b'), 1000, 3000);
        assert.deepEqual(await meta.listStuckDeleting(100_000), [d('b')]);
        assert.equal(await meta.reserveBlob(d('b'), 1, 3000 + 60_000), 'ok');
      });

      it('untagged manifests: not index children, not referrers of a present subject, idle', async () => {
        await upload('r', d('l'), 100);
        await storeManifest(manifest('r', 'tagged', [d('l')], { tags: ['t'] }), 100);
        await storeManifest(manifest('r', 'loose', [d('l')]), 100);
        await storeManifest(manifest('r', 'child', [d('l')]), 100);
        await storeManifest({ ...manifest('r', 'index', []), manifests: [d('child')], tags: ['i'] }, 100);
        await storeManifest(manifest('r', 'sig', [d('l')], { subject: d('tagged') }), 100);
        await storeManifest(manifest('r', 'dangling-sig', [d('l')], { subject: d('gone') }), 100);
        const listed = (await meta.listUntaggedManifests(1000)).map((m) => m.digest).sort();
        assert.deepEqual(listed, [d('dangling-sig'), d('loose')].sort());
        assert.deepEqual(await meta.listUntaggedManifests(50), [], 'recently touched manifests are kept');
        assert.equal(await meta.deleteUntaggedManifest('r', d('tagged'), 1000), false);
        assert.equal(await meta.deleteUntaggedManifest('r', d('loose'), 1000), true);
        assert.equal(await meta.getManifest('r', d('loose')), null);
      });

      it('claimOrphan only claims digests without a row', async () => {
        await meta.reserveBlob(d('known'), 1, 1);
        assert.equal(await meta.claimOrphan(d('known'), 5), false);
        assert.equal(await meta.claimOrphan(d('stray'), 5), true);
        assert.equal(await meta.reserveBlob(d('stray'), 1, 6), 'deleting');
        await meta.finishDeleting(d('stray'));
        assert.equal(await meta.reserveBlob(d('stray'), 1, 7), 'ok');
      });
    });
  });
}
