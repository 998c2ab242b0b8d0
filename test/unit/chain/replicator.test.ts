// Replicator between two real Shoal registries (in-process, real sockets): the whole tree with
// referrers, digests identical, present blobs skipped, mounts across repositories, name rewriting,
// and resume of a chunked copy that was cut off: the rerun sends only what had not arrived.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient as TestClient, pushImage, pushArtifact, pushManifest, buildIndex, manifestDescriptor, randomBlob } from '../../support/oci-http.js';
import { RegistryClient, readStream } from '../../../src/client/registry-client.js';
import { Replicator, chunks, confirmedOffset, pathOf } from '../../../src/replicate/replicator.js';
import { MemoryUploadJournal } from '../../../src/replicate/journal.js';
import { rewriteName } from '../../../src/replicate/stage.js';
import { Readable } from 'node:stream';
import { startInProcess } from './inproc.js';

describe('replicator', () => {
  let src: Awaited<ReturnType<typeof startInProcess>>;
  let dst: Awaited<ReturnType<typeof startInProcess>>;
  let srcClient: TestClient;
  before(async () => {
    src = await startInProcess();
    dst = await startInProcess();
    srcClient = new TestClient(src.url);
  });
  after(async () => {
    await srcClient.close();
    await src.stop();
    await dst.stop();
  });

  const referrersOn = async (repo: string, subject: string): Promise<string[]> => {
    const res = await new RegistryClient(dst.url).send('GET', `/v2/${repo}/referrers/${subject}`);
    const index = JSON.parse((await readStream(res.body, 1 << 20)).toString()) as { manifests: Array<{ digest: string }> };
    return index.manifests.map((m) => m.digest);
  };

  it('copies manifest, blobs and referrers with identical digests; a second copy sends nothing', async () => {
    const img = await pushImage(srcClient, 'team/app', { layers: 3, layerSize: 300_000, ref: 'v1' });
    const sbom = await pushArtifact(srcClient, 'team/app', { artifactType: 'application/spdx+json', subject: manifestDescriptor(img.manifest) });
    const journal = new MemoryUploadJournal();
    const r = new Replicator(new RegistryClient(src.url), new RegistryClient(dst.url), { journal, chunkSize: 128 * 1024 });
    const res = await r.replicate({ sourceRepo: 'team/app', reference: 'v1', targetRepo: 'mirror/app' });
    assert.equal(res.digest, img.manifest.digest);
    assert.equal(res.referrers, 1);
    assert.equal(res.blobs.copied, res.blobs.total);
    assert.ok(res.bytesSent >= 900_000);
    const target = new RegistryClient(dst.url);
    assert.equal((await target.getManifest('mirror/app', 'v1')).digest, img.manifest.digest);
    assert.equal((await target.getManifest('mirror/app', sbom.manifest.digest)).digest, sbom.manifest.digest);
    const refs = await target.send('GET', `/v2/mirror/app/referrers/${img.manifest.digest}`);
    const index = JSON.parse((await readStream(refs.body, 1 << 20)).toString()) as { manifests: Array<{ digest: string }> };
    assert.deepEqual(index.manifests.map((m) => m.digest), [sbom.manifest.digest]);
    for (const l of img.layers) {
      const b = await target.getBlob('mirror/app', l.digest as never);
      assert.deepEqual(await readStream(b.body, 1 << 20), l.data);
    }
    assert.equal(journal.entries.size, 0, 'journal is cleared after commit');

    const again = await r.replicate({ sourceRepo: 'team/app', reference: 'v1', targetRepo: 'mirror/app' });
    assert.equal(again.bytesSent, 0);
    assert.equal(again.blobs.present, again.blobs.total);

    const other = await r.replicate({ sourceRepo: 'team/app', reference: 'v1', targetRepo: 'mirror/other' });
    assert.equal(other.bytesSent, 0, 'blobs in another target repository are mounted, not sent');
    assert.equal(other.blobs.mounted, other.blobs.total);
  });

  it('carries the referrers of every manifest in an index (per-platform SBOMs) and referrers of referrers', async () => {
    const amd = await pushImage(srcClient, 'team/multi', { layers: 1, layerSize: 1000, platform: { os: 'linux', architecture: 'amd64' } });
    const arm = await pushImage(srcClient, 'team/multi', { layers: 1, layerSize: 1000, platform: { os: 'linux', architecture: 'arm64' } });
    const index = buildIndex([{ manifest: amd.manifest }, { manifest: arm.manifest }]);
    await pushManifest(srcClient, 'team/multi', 'v1', index);
    const sbomAmd = await pushArtifact(srcClient, 'team/multi', { artifactType: 'application/spdx+json', subject: manifestDescriptor(amd.manifest) });
    const sbomArm = await pushArtifact(srcClient, 'team/multi', { artifactType: 'application/spdx+json', subject: manifestDescriptor(arm.manifest) });
    const sigOfSbom = await pushArtifact(srcClient, 'team/multi', { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', subject: manifestDescriptor(sbomAmd.manifest) });
    const r = new Replicator(new RegistryClient(src.url), new RegistryClient(dst.url), { journal: new MemoryUploadJournal() });
    const res = await r.replicate({ sourceRepo: 'team/multi', reference: 'v1', targetRepo: 'team/multi' });
    assert.equal(res.digest, index.digest);
    assert.equal(res.referrers, 3);
    assert.deepEqual(await referrersOn('team/multi', amd.manifest.digest), [sbomAmd.manifest.digest]);
    assert.deepEqual(await referrersOn('team/multi', arm.manifest.digest), [sbomArm.manifest.digest]);
    assert.deepEqual(await referrersOn('team/multi', sbomAmd.manifest.digest), [sigOfSbom.manifest.digest]);
  });

  it('replicateReferrers copies only the referrers the target lacks (a signature pushed after the copy)', async () => {
    const img = await pushImage(srcClient, 'team/signed', { layers: 1, layerSize: 2000, ref: 'v1' });
    const sbom = await pushArtifact(srcClient, 'team/signed', { artifactType: 'application/spdx+json', subject: manifestDescriptor(img.manifest) });
    const r = new Replicator(new RegistryClient(src.url), new RegistryClient(dst.url), { journal: new MemoryUploadJournal() });
    await r.replicate({ sourceRepo: 'team/signed', reference: 'v1', targetRepo: 'team/signed' });
    const sig = await pushArtifact(srcClient, 'team/signed', { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', subject: manifestDescriptor(img.manifest) });
    const late = await r.replicateReferrers({ sourceRepo: 'team/signed', reference: img.manifest.digest, targetRepo: 'team/signed' });
    assert.equal(late.referrers, 1, 'only the new signature');
    assert.equal(late.blobs.total, 2, "the signature's config and layer, not the SBOM's or the image's");
    assert.deepEqual((await referrersOn('team/signed', img.manifest.digest)).sort(), [sbom.manifest.digest, sig.manifest.digest].sort());
    const again = await r.replicateReferrers({ sourceRepo: 'team/signed', reference: img.manifest.digest, targetRepo: 'team/signed' });
    assert.deepEqual([again.referrers, again.bytesSent], [0, 0]);
  });

  it('resumes a copy cut off halfway from the target\'s upload offset, sending only the rest', async () => {
    const size = 8 * 1024 * 1024;
    const layer = randomBlob(size);
    const img = await pushImage(srcClient, 'team/big', { layerBlobs: [layer], ref: 'v1' });
    const journal = new MemoryUploadJournal();
    const chunkSize = 1024 * 1024;
    const mk = () => new Replicator(new RegistryClient(src.url), new RegistryClient(dst.url), { journal, chunkSize, concurrency: 1, attempts: 1 });
    const abort = new AbortController();
    let cutAt = 0;
    const first = mk().replicate({
      sourceRepo: 'team/big',
      reference: 'v1',
      targetRepo: 'team/big',
      signal: abort.signal,
      onProgress: (done) => {
        // Config (small) and then the layer: cut once 3 chunks of the layer arrived.
        if (done >= 3 * chunkSize && !abort.signal.aborted) {
          cutAt = done;
          abort.abort(new Error('killed'));
        }
      },
    });
    await assert.rejects(first);
    assert.ok(cutAt > 0);
    const saved = [...journal.entries.values()].find((e) => e.size === size);
    assert.ok(saved && saved.offset >= 3 * chunkSize, `journal holds the confirmed offset (${saved?.offset})`);

    const rerun = await mk().replicate({ sourceRepo: 'team/big', reference: 'v1', targetRepo: 'team/big' });
    assert.equal(rerun.digest, img.manifest.digest);
    assert.equal(rerun.blobs.resumed, 1);
    assert.equal(rerun.bytesSent, size - saved.offset, 'only the bytes that had not arrived are sent again');
    const b = await new RegistryClient(dst.url).getBlob('team/big', layer.digest as never);
    assert.deepEqual(await readStream(b.body, 64 << 20), layer.data);
  });

  it('helpers: chunking, Range parsing, Location paths, name rewriting', async () => {
    const got: number[] = [];
    for await (const c of chunks(Readable.from([Buffer.alloc(5), Buffer.alloc(7), Buffer.alloc(1)]), 4)) got.push(c.length);
    assert.deepEqual(got, [4, 4, 4, 1]);
    assert.equal(confirmedOffset('0-1023', 0), 1024);
    assert.equal(confirmedOffset('0-0', 0), 0);
    assert.equal(confirmedOffset(undefined, 55), 0);
    assert.equal(pathOf('http://h:1/v2/a/blobs/uploads/x?_state=y'), '/v2/a/blobs/uploads/x?_state=y');
    assert.equal(pathOf('/v2/a/blobs/uploads/x'), '/v2/a/blobs/uploads/x');
    assert.equal(rewriteName({ rewrite: { stripPrefix: 'team/', prefix: 'mirror/' } }, 'team/app'), 'mirror/app');
    assert.equal(rewriteName({ rewrite: { stripPrefix: '', prefix: '' } }, 'team/app'), 'team/app');
  });
});
